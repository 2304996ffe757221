"""My book lists (マイブックリスト, Fukushima) with CSV export, and favourites (お気に入り, Koga).

Limits from Fukushima's page: 100 lists of 100 titles, a name of 50 characters, memos of 1 000
characters (counted as characters, so 1 000 Japanese characters fit).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from sqlalchemy import bindparam, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.i18n import N_
from app.models import Bib, BookList, BookListEntry, Favourite
from app.reads import Bound, Read
from app.services.refusal import Refused

MAX_LISTS = 100
MAX_ENTRIES = 100
MAX_NAME = 50
MAX_MEMO = 1000

MESSAGES = {
    "name_empty": N_("Please give the list a name."),
    "name_long": N_("A list name can be at most %(max)s characters."),
    "memo_long": N_("A memo can be at most %(max)s characters."),
    "too_many_lists": N_("You can keep at most %(max)s lists."),
    "list_full": N_("A list can hold at most %(max)s titles."),
    "already": N_("This title is already in that list."),
}


class ListRefused(Refused):
    messages = MESSAGES
    limits: ClassVar[dict[str, int]] = {
        "name_long": MAX_NAME,
        "memo_long": MAX_MEMO,
        "too_many_lists": MAX_LISTS,
        "list_full": MAX_ENTRIES,
    }


class ListNotFound(LookupError):
    """No list (or entry, or title) with that id belongs to this patron."""


@dataclass(frozen=True)
class ListSummary:
    id: int
    name: str
    memo: str
    entries: int


@dataclass(frozen=True)
class EntryView:
    id: int
    bib_id: int
    title: str
    authors: str
    publisher: str
    pub_year: int | None
    isbn: str | None
    memo: str
    added_at: dt.datetime


def _clean(value: str, limit: int, reason: str) -> str:
    text = unicodedata.normalize("NFC", value).strip()
    if len(text) > limit:
        raise ListRefused(reason)
    return text


_SUMMARIES = Read(
    lambda: (
        select(BookList.id, BookList.name, BookList.memo, func.count(BookListEntry.id).label("entries"))
        .outerjoin(BookListEntry, BookListEntry.list_id == BookList.id)
        .where(BookList.patron_id == bindparam("patron_id"))
        .group_by(BookList.id)
        .order_by(BookList.id)
    )
)


def summaries_read(patron_id: int) -> Bound:
    """The patron's lists with their number of titles: a list of ListSummary (app/reads.py)."""
    return Bound(_SUMMARIES, {"patron_id": patron_id}, _summaries)


def _summaries(rows: list[Any]) -> list[ListSummary]:
    return [ListSummary(*row) for row in rows]


async def summaries(session: AsyncSession, patron_id: int) -> list[ListSummary]:
    return await summaries_read(patron_id).run(session)  # type: ignore[no-any-return]


async def create(session: AsyncSession, patron_id: int, name: str, memo: str = "") -> int:
    name = _clean(name, MAX_NAME, "name_long")
    if not name:
        raise ListRefused("name_empty")
    memo = _clean(memo, MAX_MEMO, "memo_long")
    if (await session.scalar(select(func.count()).where(BookList.patron_id == patron_id)) or 0) >= MAX_LISTS:
        raise ListRefused("too_many_lists")
    book_list = BookList(patron_id=patron_id, name=name, memo=memo)
    session.add(book_list)
    await session.commit()
    return book_list.id


async def _owned(session: AsyncSession, patron_id: int, list_id: int) -> BookList:
    book_list = await session.scalar(
        select(BookList).where(BookList.id == list_id, BookList.patron_id == patron_id)
    )
    if book_list is None:
        raise ListNotFound(list_id)
    return book_list


async def rename(session: AsyncSession, patron_id: int, list_id: int, name: str, memo: str) -> None:
    book_list = await _owned(session, patron_id, list_id)
    clean_name = _clean(name, MAX_NAME, "name_long")
    if not clean_name:
        raise ListRefused("name_empty")
    book_list.name, book_list.memo = clean_name, _clean(memo, MAX_MEMO, "memo_long")
    await session.commit()


async def remove_list(session: AsyncSession, patron_id: int, list_id: int) -> None:
    book_list = await _owned(session, patron_id, list_id)
    await session.execute(delete(BookListEntry).where(BookListEntry.list_id == book_list.id))
    await session.delete(book_list)
    await session.commit()


async def add_entry(session: AsyncSession, patron_id: int, list_id: int, bib_id: int, memo: str = "") -> None:
    book_list = await _owned(session, patron_id, list_id)
    memo = _clean(memo, MAX_MEMO, "memo_long")
    if await session.scalar(select(Bib.id).where(Bib.id == bib_id)) is None:
        raise ListNotFound(bib_id)
    count = await session.scalar(select(func.count()).where(BookListEntry.list_id == book_list.id)) or 0
    if count >= MAX_ENTRIES:
        raise ListRefused("list_full")
    session.add(BookListEntry(list_id=book_list.id, bib_id=bib_id, memo=memo))
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise ListRefused("already") from exc


async def remove_entry(session: AsyncSession, patron_id: int, list_id: int, entry_id: int) -> None:
    book_list = await _owned(session, patron_id, list_id)
    result = await session.execute(
        delete(BookListEntry).where(BookListEntry.id == entry_id, BookListEntry.list_id == book_list.id)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise ListNotFound(entry_id)
    await session.commit()


async def entries(session: AsyncSession, patron_id: int, list_id: int) -> tuple[BookList, list[EntryView]]:
    book_list = await _owned(session, patron_id, list_id)
    rows = await session.execute(
        select(
            BookListEntry.id,
            Bib.id,
            Bib.title,
            Bib.authors,
            Bib.publisher,
            Bib.pub_year,
            Bib.isbn,
            BookListEntry.memo,
            BookListEntry.added_at,
        )
        .join(Bib, Bib.id == BookListEntry.bib_id)
        .where(BookListEntry.list_id == book_list.id)
        .order_by(BookListEntry.id)
    )
    return book_list, [EntryView(*row) for row in rows]


def _cell(value: object) -> str:
    """Spreadsheets run a cell that starts with = + - @ tab or CR as a formula: quote it as text."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_bytes(header: Sequence[str], rows: Iterable[Sequence[object]]) -> bytes:
    """UTF-8 with a BOM, so spreadsheet programs open Japanese correctly; every cell formula-safe."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([_cell(v) for v in row])
    return "\ufeff".encode() + out.getvalue().encode("utf-8")


CSV_HEADER = ("title", "author", "publisher", "year", "isbn", "memo", "added")


def to_csv(book_list: BookList, rows: list[EntryView]) -> bytes:
    """Fukushima: a list downloaded as CSV."""
    return csv_bytes(
        CSV_HEADER,
        (
            (r.title, r.authors, r.publisher, r.pub_year, r.isbn, r.memo, r.added_at.date().isoformat())
            for r in rows
        ),
    )


async def toggle_favourite(session: AsyncSession, patron_id: int, bib_id: int) -> bool:
    """Add or remove a favourite; True when it is now a favourite."""
    if await session.scalar(select(Bib.id).where(Bib.id == bib_id)) is None:
        raise ListNotFound(bib_id)
    existing = await session.scalar(
        select(Favourite).where(Favourite.patron_id == patron_id, Favourite.bib_id == bib_id)
    )
    if existing is not None:
        await session.delete(existing)
        await session.commit()
        return False
    session.add(Favourite(patron_id=patron_id, bib_id=bib_id))
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
    return True


async def is_favourite(session: AsyncSession, patron_id: int, bib_id: int) -> bool:
    found = await session.scalar(
        select(Favourite.id).where(Favourite.patron_id == patron_id, Favourite.bib_id == bib_id)
    )
    return found is not None


async def favourites(session: AsyncSession, patron_id: int) -> list[tuple[int, str, str]]:
    rows = await session.execute(
        select(Bib.id, Bib.title, Bib.authors)
        .join(Favourite, Favourite.bib_id == Bib.id)
        .where(Favourite.patron_id == patron_id)
        .order_by(Favourite.id.desc())
    )
    return [tuple(r) for r in rows]  # type: ignore[misc]

"""Reading history (My本棚, Koga): the titles a patron borrowed, kept only while they opt in.

Off by default. Each check-out adds its title (one row per title: first and last loan date and how
many times). Turning it off deletes the history and the patron's shelves at once: the library keeps
no record of what a patron read once they say no. Custom shelves (本棚を作成する) sort entries.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from dataclasses import dataclass
from typing import ClassVar

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import dialect_insert
from app.i18n import N_
from app.models import Bib, HistoryEntry, HistoryShelf, Patron
from app.services.lists import csv_bytes
from app.services.refusal import Refused

MAX_SHELVES = 30
MAX_SHELF_NAME = 50

MESSAGES = {
    "name_empty": N_("Please give the shelf a name."),
    "name_long": N_("A shelf name can be at most %(max)s characters."),
    "too_many": N_("You can make at most %(max)s shelves."),
    "not_kept": N_("Your reading history is off. Turn it on to keep the titles you borrow."),
}


class HistoryRefused(Refused):
    messages = MESSAGES
    limits: ClassVar[dict[str, int]] = {"name_long": MAX_SHELF_NAME, "too_many": MAX_SHELVES}


class HistoryNotFound(LookupError):
    """No shelf or entry with that id belongs to this patron."""


@dataclass(frozen=True)
class Shelf:
    id: int
    name: str
    entries: int


@dataclass(frozen=True)
class Entry:
    id: int
    bib_id: int
    title: str
    authors: str
    publisher: str
    pub_year: int | None
    isbn: str | None
    shelf_id: int | None
    shelf_name: str | None
    first_loaned_on: dt.date
    last_loaned_on: dt.date
    times: int


async def record_loan(session: AsyncSession, patron_id: int, bib_id: int, day: dt.date) -> None:
    """Called by check-out, in its transaction, for a patron who opted in (the caller checks)."""
    insert = dialect_insert(session)
    statement = insert(HistoryEntry).values(
        patron_id=patron_id, bib_id=bib_id, first_loaned_on=day, last_loaned_on=day, times=1
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["patron_id", "bib_id"],
            set_={"last_loaned_on": day, "times": HistoryEntry.times + 1},
        )
    )


async def is_kept(session: AsyncSession, patron_id: int) -> bool:
    return bool(await session.scalar(select(Patron.keep_history).where(Patron.id == patron_id)))


async def count(session: AsyncSession, patron_id: int) -> int:
    return await session.scalar(select(func.count()).where(HistoryEntry.patron_id == patron_id)) or 0


async def set_kept(session: AsyncSession, patron_id: int, keep: bool) -> int:
    """Turn the history on or off; off deletes every entry and shelf. Returns how many were deleted."""
    deleted = 0
    if not keep:
        result = await session.execute(delete(HistoryEntry).where(HistoryEntry.patron_id == patron_id))
        deleted = result.rowcount or 0  # type: ignore[attr-defined]
        await session.execute(delete(HistoryShelf).where(HistoryShelf.patron_id == patron_id))
    await session.execute(update(Patron).where(Patron.id == patron_id).values(keep_history=keep))
    await session.commit()
    return deleted


async def shelves(session: AsyncSession, patron_id: int) -> list[Shelf]:
    rows = await session.execute(
        select(HistoryShelf.id, HistoryShelf.name, func.count(HistoryEntry.id))
        .outerjoin(HistoryEntry, HistoryEntry.shelf_id == HistoryShelf.id)
        .where(HistoryShelf.patron_id == patron_id)
        .group_by(HistoryShelf.id)
        .order_by(HistoryShelf.id)
    )
    return [Shelf(*row) for row in rows]


def _name(value: str) -> str:
    name = unicodedata.normalize("NFC", value).strip()
    if not name:
        raise HistoryRefused("name_empty")
    if len(name) > MAX_SHELF_NAME:
        raise HistoryRefused("name_long")
    return name


async def create_shelf(session: AsyncSession, patron_id: int, name: str) -> int:
    clean = _name(name)
    if not await is_kept(session, patron_id):
        raise HistoryRefused("not_kept")
    if (
        await session.scalar(select(func.count()).where(HistoryShelf.patron_id == patron_id)) or 0
    ) >= MAX_SHELVES:
        raise HistoryRefused("too_many")
    shelf = HistoryShelf(patron_id=patron_id, name=clean)
    session.add(shelf)
    await session.commit()
    return shelf.id


async def _shelf(session: AsyncSession, patron_id: int, shelf_id: int) -> HistoryShelf:
    shelf = await session.scalar(
        select(HistoryShelf).where(HistoryShelf.id == shelf_id, HistoryShelf.patron_id == patron_id)
    )
    if shelf is None:
        raise HistoryNotFound(shelf_id)
    return shelf


async def rename_shelf(session: AsyncSession, patron_id: int, shelf_id: int, name: str) -> None:
    shelf = await _shelf(session, patron_id, shelf_id)
    shelf.name = _name(name)
    await session.commit()


async def delete_shelf(session: AsyncSession, patron_id: int, shelf_id: int) -> None:
    """The shelf goes; its titles stay in the history, unsorted."""
    shelf = await _shelf(session, patron_id, shelf_id)
    await session.execute(
        update(HistoryEntry)
        .where(HistoryEntry.shelf_id == shelf.id, HistoryEntry.patron_id == patron_id)
        .values(shelf_id=None)
    )
    await session.delete(shelf)
    await session.commit()


async def move(session: AsyncSession, patron_id: int, entry_id: int, shelf_id: int | None) -> None:
    """Put an entry on one of the patron's shelves (None: unsorted)."""
    if shelf_id is not None:
        await _shelf(session, patron_id, shelf_id)
    result = await session.execute(
        update(HistoryEntry)
        .where(HistoryEntry.id == entry_id, HistoryEntry.patron_id == patron_id)
        .values(shelf_id=shelf_id)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise HistoryNotFound(entry_id)
    await session.commit()


async def remove(session: AsyncSession, patron_id: int, entry_id: int) -> None:
    result = await session.execute(
        delete(HistoryEntry).where(HistoryEntry.id == entry_id, HistoryEntry.patron_id == patron_id)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise HistoryNotFound(entry_id)
    await session.commit()


UNSORTED = 0  # the shelf filter's value for "not on a shelf"


async def entries(session: AsyncSession, patron_id: int, shelf_id: int | None = None) -> list[Entry]:
    """Newest loan first; `shelf_id` filters to one shelf (UNSORTED: entries on no shelf)."""
    query = (
        select(
            HistoryEntry.id,
            Bib.id,
            Bib.title,
            Bib.authors,
            Bib.publisher,
            Bib.pub_year,
            Bib.isbn,
            HistoryEntry.shelf_id,
            HistoryShelf.name,
            HistoryEntry.first_loaned_on,
            HistoryEntry.last_loaned_on,
            HistoryEntry.times,
        )
        .join(Bib, Bib.id == HistoryEntry.bib_id)
        .outerjoin(HistoryShelf, HistoryShelf.id == HistoryEntry.shelf_id)
        .where(HistoryEntry.patron_id == patron_id)
        .order_by(HistoryEntry.last_loaned_on.desc(), HistoryEntry.id.desc())
    )
    if shelf_id == UNSORTED:
        query = query.where(HistoryEntry.shelf_id.is_(None))
    elif shelf_id is not None:
        await _shelf(session, patron_id, shelf_id)
        query = query.where(HistoryEntry.shelf_id == shelf_id)
    rows = await session.execute(query)
    return [Entry(*row) for row in rows]  # type: ignore[call-arg]  # 12 columns: past select()'s typed overloads


CSV_HEADER = (
    "title",
    "author",
    "publisher",
    "year",
    "isbn",
    "shelf",
    "first_borrowed",
    "last_borrowed",
    "times",
)


def to_csv(rows: list[Entry]) -> bytes:
    return csv_bytes(
        CSV_HEADER,
        (
            (
                r.title,
                r.authors,
                r.publisher,
                r.pub_year,
                r.isbn,
                r.shelf_name or "",
                r.first_loaned_on.isoformat(),
                r.last_loaned_on.isoformat(),
                r.times,
            )
            for r in rows
        ),
    )

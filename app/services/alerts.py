"""New-arrival alerts (新着図書お知らせメールサービス, Fukushima) and their biweekly digest.

A patron saves a search as an alert (at most 10). On the 2nd and 4th Tuesday of each month the
digest mails, once per patron, the new arrivals matching each of their alerts. Fukushima's rule:
新着図書とは、過去1年間に刊行された図書で、最近2週間に新たに利用できるようになったもの
(雑誌等の逐次刊行物は除きます) — titles published within the past year whose first copy became
available in the last 14 days, magazines and serials excluded; 該当図書がない場合は、配信されません —
no mail when nothing matched. Only patrons who opted in to new-arrival mail and hold a confirmed
address receive it.

How it scales: the new arrivals of a fortnight are a few hundred titles even in a million-title
catalogue, so the digest copies just those into an in-memory SQLite search index built exactly like
the catalogue's (same tokenizer, same match expressions: app/services/catalog.py) and runs every
alert there. The main database sees one read of the new titles, one read per 1 000 patrons' alerts
and one bulk insert of notices per 1 000 patrons (bench/digest.py measures it).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import sqlite3
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar
from urllib.parse import urlencode

from sqlalchemy import bindparam, delete, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import dialect_insert
from app.i18n import N_
from app.models import NOTICES, Alert, Bib, Email, Item, Patron, Series
from app.reads import Bound, Read
from app.services import catalog
from app.services.refusal import Refused

MAX_ALERTS = 10
MAX_NAME = 50
NEW_DAYS = 14  # 最近2週間に新たに利用できるようになった
SERIALS = ("magazine", "serial")  # 雑誌等の逐次刊行物は除きます
PATRONS_PER_BATCH = 1000
MAX_TITLES_PER_ALERT = 30  # a mail stays readable; the rest are one search away

MESSAGES = {
    "empty": N_("Search for something first: an alert needs at least one search term or condition."),
    "too_many": N_("You can keep at most %(max)s alerts. Delete one first."),
    "name_long": N_("An alert name can be at most %(max)s characters."),
    "already": N_("You already have an alert for this search."),
}

# The search fields an alert keeps (not the page or the sort order).
KEPT = (
    "q",
    "title",
    "author",
    "publisher",
    "subject",
    "isbn",
    "year_from",
    "year_to",
    "material_type",
    "branch_id",
)


class AlertRefused(Refused):
    messages = MESSAGES
    limits: ClassVar[dict[str, int]] = {"too_many": MAX_ALERTS, "name_long": MAX_NAME}


class AlertNotFound(LookupError):
    """No alert with that id belongs to this patron."""


@dataclass(frozen=True)
class AlertView:
    id: int
    name: str
    params: catalog.SearchParams
    created_at: dt.datetime

    @property
    def query_string(self) -> str:
        return search_query_string(self.params)


def to_json(params: catalog.SearchParams) -> str:
    values = {k: getattr(params, k) for k in KEPT if getattr(params, k) not in ("", None)}
    return json.dumps(values, ensure_ascii=False, sort_keys=True)


def from_json(raw: str) -> catalog.SearchParams:
    known = {f.name for f in fields(catalog.SearchParams)}
    values = {k: v for k, v in json.loads(raw or "{}").items() if k in known and k in KEPT}
    return catalog.SearchParams(**values)


def search_query_string(params: catalog.SearchParams) -> str:
    """The search page's query string for these parameters (the "Run this search" link)."""
    values: dict[str, Any] = {}
    for key in KEPT:
        value = getattr(params, key)
        if value not in ("", None):
            values["branch" if key == "branch_id" else key] = value
    return urlencode(values)


def default_name(params: catalog.SearchParams) -> str:
    parts = [
        v for v in (params.q, params.title, params.author, params.publisher, params.subject, params.isbn) if v
    ]
    if params.year_from or params.year_to:
        parts.append(f"{params.year_from or ''}–{params.year_to or ''}")
    if params.material_type:
        parts.append(params.material_type)
    name = " / ".join(parts) or "alert"
    return name if len(name) <= MAX_NAME else name[: MAX_NAME - 1] + "…"


async def save(session: AsyncSession, patron_id: int, params: catalog.SearchParams, name: str = "") -> int:
    if params.is_empty:
        raise AlertRefused("empty")
    clean = unicodedata.normalize("NFC", name).strip() or default_name(params)
    if len(clean) > MAX_NAME:
        raise AlertRefused("name_long")
    query = to_json(params)
    mine = (await session.execute(select(Alert.query).where(Alert.patron_id == patron_id))).scalars().all()
    if query in mine:
        raise AlertRefused("already")
    if len(mine) >= MAX_ALERTS:
        raise AlertRefused("too_many")
    alert = Alert(patron_id=patron_id, name=clean, query=query)
    session.add(alert)
    await session.commit()
    return alert.id


_LIST = Read(
    lambda: (
        select(Alert.id, Alert.name, Alert.query, Alert.created_at)
        .where(Alert.patron_id == bindparam("patron_id"))
        .order_by(Alert.id)
    )
)


def alerts_read(patron_id: int) -> Bound:
    """The patron's saved searches, oldest first: a list of AlertView (app/reads.py)."""
    return Bound(_LIST, {"patron_id": patron_id}, _alert_views)


def _alert_views(rows: list[Any]) -> list[AlertView]:
    return [AlertView(i, n, from_json(q), c) for i, n, q, c in rows]


async def list_alerts(session: AsyncSession, patron_id: int) -> list[AlertView]:
    return await alerts_read(patron_id).run(session)  # type: ignore[no-any-return]


async def rename(session: AsyncSession, patron_id: int, alert_id: int, name: str) -> None:
    alert = await session.scalar(select(Alert).where(Alert.id == alert_id, Alert.patron_id == patron_id))
    if alert is None:
        raise AlertNotFound(alert_id)
    clean = unicodedata.normalize("NFC", name).strip()
    if len(clean) > MAX_NAME:
        raise AlertRefused("name_long")
    alert.name = clean or default_name(from_json(alert.query))
    await session.commit()


async def remove(session: AsyncSession, patron_id: int, alert_id: int) -> None:
    result = await session.execute(delete(Alert).where(Alert.id == alert_id, Alert.patron_id == patron_id))
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise AlertNotFound(alert_id)
    await session.commit()


# ---------------------------------------------------------------- unsubscribe links


def unsubscribe_token(secret: str, patron_id: int) -> str:
    digest = hmac.new(secret.encode(), f"arrivals-unsubscribe:{patron_id}".encode(), hashlib.sha256)
    return f"{patron_id}.{digest.hexdigest()[:32]}"


def patron_from_token(secret: str, token: str) -> int | None:
    head, _, _ = token.partition(".")
    if not head.isdigit() or len(head) > 10:
        return None
    return int(head) if hmac.compare_digest(unsubscribe_token(secret, int(head)), token) else None


async def unsubscribe(session: AsyncSession, patron_id: int) -> None:
    patron = await session.get(Patron, patron_id)
    if patron is not None:
        patron.notify_arrivals = False
        await session.commit()


# ---------------------------------------------------------------- the digest


def is_digest_day(day: dt.date) -> bool:
    """第2・第4火曜日: a Tuesday in days 8–14 or 22–28 of its month."""
    return day.isoweekday() == 2 and (8 <= day.day <= 14 or 22 <= day.day <= 28)


@dataclass(frozen=True)
class Arrival:
    id: int
    title: str
    authors: str
    pub_year: int | None


async def new_arrivals(session: AsyncSession, day: dt.date) -> list[dict[str, Any]]:
    """Bibs published within the past year whose first copy became available in the 14 days to `day`.

    Only the year of publication is catalogued, so "within the past year" is: published in the year a
    year before `day`, or later.
    """
    window_start = day - dt.timedelta(days=NEW_DAYS)
    earlier = (
        select(Item.id)
        .where(Item.bib_id == Bib.id, Item.available_since <= window_start)
        .correlate(Bib)
        .exists()
    )
    fresh = (
        select(Item.bib_id)
        .where(Item.available_since > window_start, Item.available_since <= day)
        .distinct()
        .scalar_subquery()
    )
    rows = await session.execute(
        select(
            Bib.id,
            Bib.title,
            Bib.title_reading,
            Bib.authors,
            Bib.authors_reading,
            Bib.publisher,
            Bib.subjects,
            Bib.isbn,
            Bib.pub_year,
            Bib.material_type,
            Series.title.label("series_title"),
            Series.title_reading.label("series_reading"),
        )
        .outerjoin(Series, Series.id == Bib.series_id)
        .where(
            Bib.id.in_(fresh),
            Bib.pub_year >= (day - dt.timedelta(days=365)).year,
            Bib.material_type.not_in(SERIALS),
            ~earlier,
        )
    )
    return [dict(r._mapping) for r in rows]


class ArrivalIndex:
    """The fortnight's new titles in an in-memory copy of the catalogue's search index."""

    def __init__(
        self, bibs: Sequence[dict[str, Any]], items: Iterable[tuple[int, str, bool, int | None, int]]
    ):
        self.db = sqlite3.connect(":memory:")
        self.db.execute(catalog.FTS_DEFINITION)
        self.db.execute(
            "CREATE TABLE bibs (id INTEGER PRIMARY KEY, pub_year INTEGER, material_type TEXT, isbn TEXT)"
        )
        self.db.execute(
            "CREATE TABLE items (bib_id INTEGER, status TEXT, loanable INTEGER, "
            "location_branch_id INTEGER, branch_id INTEGER)"
        )
        self.arrivals: dict[int, Arrival] = {}
        for bib in bibs:
            values = catalog.index_values(bib)
            self.db.execute(
                "INSERT INTO bib_fts(rowid, title, author, publisher, subject, chars) "
                "VALUES (:rowid, :title, :author, :publisher, :subject, :chars)",
                values,
            )
            self.db.execute(
                "INSERT INTO bibs VALUES (?, ?, ?, ?)",
                (bib["id"], bib["pub_year"], bib["material_type"], bib["isbn"]),
            )
            self.arrivals[bib["id"]] = Arrival(bib["id"], bib["title"], bib["authors"], bib["pub_year"])
        self.db.executemany("INSERT INTO items VALUES (?, ?, ?, ?, ?)", items)
        self._cache: dict[str, list[int]] = {}
        self._sections: dict[str, dict[str, Any]] = {}

    def section(self, query_json: str, base_url: str) -> dict[str, Any] | None:
        """What a mail says for this search (titles and a link to all results); None when nothing matched.

        Many patrons save the same searches, so each distinct one is matched and rendered once."""
        if query_json not in self._sections:
            found = self.match(query_json)
            self._sections[query_json] = {
                "search": base_url.rstrip("/") + "/search?" + search_query_string(from_json(query_json)),
                "titles": [
                    {"id": b, "title": self.arrivals[b].title, "authors": self.arrivals[b].authors}
                    for b in found
                ],
            }
        section = self._sections[query_json]
        return section if section["titles"] else None

    def match(self, query_json: str) -> list[int]:
        """Bib ids of the new arrivals this alert's search finds, newest first."""
        if query_json not in self._cache:
            query = catalog.key_query(from_json(query_json))
            ids: list[int] = []
            if query is not None:
                sql = f"{query.base} ORDER BY k DESC LIMIT {MAX_TITLES_PER_ALERT}"
                ids = [int(k) & catalog.LOW32 for (k,) in self.db.execute(sql, query.binds)]
            self._cache[query_json] = ids
        return self._cache[query_json]


async def build_index(session: AsyncSession, day: dt.date) -> ArrivalIndex:
    bibs = await new_arrivals(session, day)
    ids = [b["id"] for b in bibs]
    items: list[tuple[int, str, bool, int | None, int]] = []
    for start in range(0, len(ids), 500):
        items.extend(
            tuple(r)  # type: ignore[misc]
            for r in await session.execute(
                select(
                    Item.bib_id, Item.status, Item.loanable, Item.location_branch_id, Item.branch_id
                ).where(Item.bib_id.in_(ids[start : start + 500]))
            )
        )
    return ArrivalIndex(bibs, items)


async def run_digest(session: AsyncSession, day: dt.date, *, secret: str, base_url: str) -> dict[str, int]:
    """Queue one new-arrival mail per subscribed patron with matches. Safe to run twice for a day."""
    counts = {"arrivals": 0, "patrons": 0, "alerts": 0, "new_arrivals": 0}
    index = await build_index(session, day)
    counts["arrivals"] = len(index.arrivals)
    if not index.arrivals:
        return counts
    confirmed = exists().where(Email.patron_id == Patron.id, Email.confirmed_at.is_not(None))
    insert = dialect_insert(session)
    stamp = dt.datetime.combine(day, dt.time(9))
    last = 0
    while True:
        patron_ids = (
            (
                await session.execute(
                    select(Patron.id)
                    .where(
                        Patron.id > last,
                        Patron.notify_arrivals,
                        confirmed,
                        exists().where(Alert.patron_id == Patron.id),
                    )
                    .order_by(Patron.id)
                    .limit(PATRONS_PER_BATCH)
                )
            )
            .scalars()
            .all()
        )
        if not patron_ids:
            break
        last = patron_ids[-1]
        grouped: dict[int, list[dict[str, Any]]] = {}
        for patron_id, name, query in await session.execute(
            select(Alert.patron_id, Alert.name, Alert.query)
            .where(Alert.patron_id.in_(patron_ids))
            .order_by(Alert.patron_id, Alert.id)
        ):
            counts["alerts"] += 1
            section = index.section(query, base_url)
            if section is not None:
                grouped.setdefault(patron_id, []).append({"name": name, **section})
        rows = [
            {
                "type": "new_arrivals",
                "patron_id": patron_id,
                "dedup_key": f"new_arrivals:patron:{patron_id}:{day.isoformat()}",
                "payload": json.dumps(
                    {
                        "alerts": found_alerts,
                        "unsubscribe": base_url.rstrip("/")
                        + "/alerts/unsubscribe?"
                        + urlencode({"t": unsubscribe_token(secret, patron_id)}),
                    },
                    ensure_ascii=False,
                ),
                "status": "pending",
                "next_attempt_at": stamp,
            }
            for patron_id, found_alerts in grouped.items()
        ]
        if rows:
            # executemany of one compiled statement (a multi-row VALUES would be compiled per batch).
            connection = await session.connection()
            result = await connection.execute(
                insert(NOTICES).on_conflict_do_nothing(index_elements=["dedup_key"]), rows
            )
            counts["new_arrivals"] += result.rowcount or 0  # type: ignore[attr-defined]
        counts["patrons"] += len(patron_ids)
        await session.commit()
    return counts

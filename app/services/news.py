"""Library news and closure notices (Yokohama's 緊急のお知らせ), events, and the library calendar.

Staff write news and events at the counter. News shows on every patron's dashboard while it is
current; when staff ask for it, it is also mailed — the worker turns one news item into one notice
per patron who opted in to library news and holds a confirmed address, 1 000 patrons per
transaction, so a counter never waits for the write lock (spec 7: mail only from the worker).
"""

from __future__ import annotations

import calendar as pycalendar
import datetime as dt
import json
import unicodedata
from dataclasses import dataclass, field
from typing import Any, ClassVar

from sqlalchemy import Date, Integer, Select, bindparam, delete, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import dialect_insert
from app.i18n import N_
from app.models import NOTICES, Branch, ClosedDay, Email, LibraryEvent, News, Notice, Patron
from app.reads import Bound, Read
from app.services.refusal import Refused

MAX_TITLE = 100
MAX_BODY = 2000
PATRONS_PER_BATCH = 1000

MESSAGES = {
    "title": N_("Give a Japanese title of at most %(max)s characters (the English title is optional)."),
    "body": N_("The text can be at most %(max)s characters."),
    "date": N_("Give a date as YYYY-MM-DD."),
    "until": N_("“Show until” cannot be before the publication day."),
    "branch": N_("Choose a branch from the list."),
}


class NewsRefused(Refused):
    messages = MESSAGES
    limits: ClassVar[dict[str, int]] = {"title": MAX_TITLE, "body": MAX_BODY}


class NewsNotFound(LookupError):
    pass


def _text(value: str, limit: int, reason: str, *, required: bool = False) -> str:
    clean = unicodedata.normalize("NFC", value).strip()
    if len(clean) > limit or (required and not clean):
        raise NewsRefused(reason)
    return clean


def parse_day(value: str, *, required: bool = True) -> dt.date | None:
    text = unicodedata.normalize("NFKC", value).strip()[:10]
    if not text and not required:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise NewsRefused("date") from exc


async def publish(
    session: AsyncSession,
    *,
    staff_id: int,
    title_ja: str,
    title_en: str,
    body_ja: str,
    body_en: str,
    urgent: bool,
    shown_until: str,
    mail: bool,
    today: dt.date,
) -> int:
    until = parse_day(shown_until, required=False)
    if until is not None and until < today:
        raise NewsRefused("until")
    news = News(
        title_ja=_text(title_ja, MAX_TITLE, "title", required=True),
        title_en=_text(title_en, MAX_TITLE, "title"),
        body_ja=_text(body_ja, MAX_BODY, "body"),
        body_en=_text(body_en, MAX_BODY, "body"),
        urgent=urgent,
        published_on=today,
        shown_until=until,
        mail_requested=mail,
        created_by=staff_id,
    )
    session.add(news)
    await session.commit()
    return news.id


async def withdraw(session: AsyncSession, news_id: int) -> None:
    """Take news off the dashboard; its mails not yet sent are not sent (those sent stay sent)."""
    result = await session.execute(delete(News).where(News.id == news_id))
    if not result.rowcount:  # type: ignore[attr-defined]
        raise NewsNotFound(news_id)
    await session.execute(
        update(Notice)
        .where(
            Notice.type == "library_news",
            Notice.status == "pending",
            Notice.dedup_key.like(f"news:{news_id}:patron:%"),
        )
        .values(status="failed", last_error="withdrawn by staff")
    )
    await session.commit()


def _current_query() -> Select:
    today = bindparam("today", type_=Date)
    return (
        select(*News.__table__.columns)
        .where(News.published_on <= today, or_(News.shown_until.is_(None), News.shown_until >= today))
        .order_by(News.urgent.desc(), News.published_on.desc(), News.id.desc())
        .limit(bindparam("limit", type_=Integer))
    )


_CURRENT = Read(_current_query)


def current_read(today: dt.date, limit: int = 5) -> Bound:
    """News to show (rows with News's columns): published, not past its "show until" day; urgent
    first, newest first; alone or with other reads (app/reads.py)."""
    return Bound(_CURRENT, {"today": today, "limit": limit}, list)


async def current(session: AsyncSession, today: dt.date, limit: int = 5) -> list[Any]:
    return await current_read(today, limit).run(session)  # type: ignore[no-any-return]


async def recent(session: AsyncSession, limit: int = 30) -> list[News]:
    return list(await session.scalars(select(News).order_by(News.id.desc()).limit(limit)))


async def fan_out(session: AsyncSession, now: dt.datetime) -> int:
    """Make the notices of every news item staff asked to mail; returns how many were queued."""
    queued = 0
    pending = (
        await session.scalars(
            select(News).where(News.mail_requested, News.mailed_at.is_(None)).order_by(News.id)
        )
    ).all()
    insert = dialect_insert(session)
    confirmed = exists().where(Email.patron_id == Patron.id, Email.confirmed_at.is_not(None))
    for news in pending:
        payload = json.dumps(
            {
                "title_ja": news.title_ja,
                "title_en": news.title_en,
                "body_ja": news.body_ja,
                "body_en": news.body_en,
                "urgent": news.urgent,
            },
            ensure_ascii=False,
        )
        news_id, last = news.id, 0
        while True:
            ids = (
                (
                    await session.execute(
                        select(Patron.id)
                        .where(Patron.id > last, Patron.notify_news, confirmed)
                        .order_by(Patron.id)
                        .limit(PATRONS_PER_BATCH)
                    )
                )
                .scalars()
                .all()
            )
            if not ids:
                break
            last = ids[-1]
            connection = await session.connection()  # executemany of one compiled statement
            result = await connection.execute(
                insert(NOTICES).on_conflict_do_nothing(index_elements=["dedup_key"]),
                [
                    {
                        "type": "library_news",
                        "patron_id": pid,
                        "dedup_key": f"news:{news_id}:patron:{pid}",
                        "payload": payload,
                        "status": "pending",
                        "next_attempt_at": now.replace(tzinfo=None),
                    }
                    for pid in ids
                ],
            )
            queued += result.rowcount or 0  # type: ignore[attr-defined]
            await session.commit()
        await session.execute(
            update(News).where(News.id == news_id).values(mailed_at=now.replace(tzinfo=None))
        )
        await session.commit()
    return queued


# ---------------------------------------------------------------- events and the calendar


async def add_event(
    session: AsyncSession, *, staff_id: int, branch: str, day: str, title_ja: str, title_en: str
) -> int:
    branch_id = None
    if branch:
        if not branch.isdigit() or await session.get(Branch, int(branch[:9])) is None:
            raise NewsRefused("branch")
        branch_id = int(branch)
    event = LibraryEvent(
        branch_id=branch_id,
        day=parse_day(day),
        title_ja=_text(title_ja, MAX_TITLE, "title", required=True),
        title_en=_text(title_en, MAX_TITLE, "title"),
        created_by=staff_id,
    )
    session.add(event)
    await session.commit()
    return event.id


async def remove_event(session: AsyncSession, event_id: int) -> None:
    result = await session.execute(delete(LibraryEvent).where(LibraryEvent.id == event_id))
    if not result.rowcount:  # type: ignore[attr-defined]
        raise NewsNotFound(event_id)
    await session.commit()


async def upcoming_events(session: AsyncSession, today: dt.date, limit: int = 30) -> list[LibraryEvent]:
    return list(
        await session.scalars(
            select(LibraryEvent).where(LibraryEvent.day >= today).order_by(LibraryEvent.day).limit(limit)
        )
    )


@dataclass
class CalendarDay:
    day: dt.date
    closed: list[tuple[str, str]] = field(default_factory=list)  # (name_ja, name_en) of closed branches
    events: list[tuple[str, str, str, str]] = field(
        default_factory=list
    )  # (title_ja, title_en, branch ja, en)


@dataclass
class Month:
    first: dt.date
    weeks: list[list[CalendarDay | None]]
    branches: list[tuple[str, str, list[dt.date]]]  # each branch's closed days this month
    coming: list[CalendarDay] = field(default_factory=list)  # events just after this month (COMING_DAYS)

    @property
    def days(self) -> list[CalendarDay]:
        return [d for week in self.weeks for d in week if d is not None]

    @property
    def events(self) -> list[CalendarDay]:
        """The days with events, this month's then those coming just after it."""
        return [d for d in self.days if d.events] + self.coming


COMING_DAYS = 14


async def month(session: AsyncSession, first: dt.date, today: dt.date | None = None) -> Month:
    """The library calendar for the month starting at `first`: weeks from Sunday, as Japanese calendars do.

    When `today` falls in that month, the events of the COMING_DAYS after today that fall in the
    next month are listed too (`coming`): on the 29th, next Saturday's story time is still news."""
    first = first.replace(day=1)
    last = first.replace(day=pycalendar.monthrange(first.year, first.month)[1])
    events_until = (
        max(last, today + dt.timedelta(days=COMING_DAYS)) if today and first <= today <= last else last
    )
    branches = (
        await session.execute(
            select(Branch.id, Branch.name_ja, Branch.name_en, Branch.closed_weekdays).order_by(Branch.id)
        )
    ).all()
    closed_rows = (
        await session.execute(
            select(ClosedDay.branch_id, ClosedDay.day).where(ClosedDay.day.between(first, last))
        )
    ).all()
    events = (
        await session.execute(
            select(
                LibraryEvent.day, LibraryEvent.title_ja, LibraryEvent.title_en, Branch.name_ja, Branch.name_en
            )
            .outerjoin(Branch, Branch.id == LibraryEvent.branch_id)
            .where(LibraryEvent.day.between(first, events_until))
            .order_by(LibraryEvent.day, LibraryEvent.id)
        )
    ).all()
    specific: dict[int, set[dt.date]] = {}
    for branch_id, day in closed_rows:
        specific.setdefault(branch_id, set()).add(day)
    days = {first + dt.timedelta(days=i): CalendarDay(first + dt.timedelta(days=i)) for i in range(last.day)}
    per_branch = []
    for branch_id, ja, en, weekly in branches:
        closed = sorted(
            d for d in days if str(d.isoweekday()) in (weekly or "") or d in specific.get(branch_id, set())
        )
        for d in closed:
            days[d].closed.append((ja, en))
        per_branch.append((ja, en, closed))
    coming: dict[dt.date, CalendarDay] = {}
    for day, title_ja, title_en, branch_ja, branch_en in events:
        target = days[day] if day <= last else coming.setdefault(day, CalendarDay(day))
        target.events.append((title_ja, title_en or title_ja, branch_ja or "", branch_en or ""))
    lead = first.isoweekday() % 7  # Sunday = 0
    cells: list[CalendarDay | None] = [None] * lead + [days[d] for d in sorted(days)]
    cells += [None] * (-len(cells) % 7)
    return Month(
        first, [cells[i : i + 7] for i in range(0, len(cells), 7)], per_branch, list(coming.values())
    )

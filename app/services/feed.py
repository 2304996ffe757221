"""Due dates and shelf deadlines in the patron's own calendar: an iCalendar feed at a secret address.

The address holds a random token (the patron can reset it, which breaks the old address at once);
whoever holds it sees due dates and titles, nothing else. Built with the `icalendar` package.
"""

from __future__ import annotations

import datetime as dt
import secrets

from icalendar import Calendar, Event
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Bib, Branch, Hold, Item, Loan, Patron

TOKEN_BYTES = 24


async def patron_token(session: AsyncSession, patron_id: int) -> str | None:
    """The patron's feed token; None until they ask for an address (GET pages never make one)."""
    return await session.scalar(select(Patron.calendar_token).where(Patron.id == patron_id))


async def reset(session: AsyncSession, patron_id: int) -> str:
    fresh = secrets.token_urlsafe(TOKEN_BYTES)
    await session.execute(update(Patron).where(Patron.id == patron_id).values(calendar_token=fresh))
    await session.commit()
    return fresh


async def patron_for(session: AsyncSession, feed_token: str) -> tuple[int, str] | None:
    if not 20 <= len(feed_token) <= 64:
        return None
    row = (
        await session.execute(select(Patron.id, Patron.lang).where(Patron.calendar_token == feed_token))
    ).first()
    return (row[0], row[1]) if row else None


async def build(session: AsyncSession, patron_id: int, lang: str, host: str) -> bytes:
    """One all-day event per due date (the titles in its description) and per shelf deadline."""
    ja = lang != "en"
    cal = Calendar()
    cal.add("prodid", "-//City Library//My Library//JA" if ja else "-//City Library//My Library//EN")
    cal.add("version", "2.0")
    cal.add("x-wr-calname", "図書館の返却日" if ja else "Library due dates")
    loans = (
        await session.execute(
            select(Loan.due_on, Bib.title)
            .join(Item, Item.id == Loan.item_id)
            .join(Bib, Bib.id == Item.bib_id)
            .where(Loan.patron_id == patron_id, Loan.returned_on.is_(None))
            .order_by(Loan.due_on, Loan.id)
        )
    ).all()
    by_day: dict[dt.date, list[str]] = {}
    for due_on, title in loans:
        by_day.setdefault(due_on, []).append(title)
    stamp = dt.datetime.now(dt.UTC)
    for due_on, titles in by_day.items():
        event = Event()
        event.add("uid", f"due-{patron_id}-{due_on.isoformat()}@{host}")
        event.add("dtstamp", stamp)
        event.add("dtstart", due_on)
        event.add("dtend", due_on + dt.timedelta(days=1))
        count = len(titles)
        event.add("summary", f"図書館の返却日({count}点)" if ja else f"Library books due ({count})")
        event.add("description", "\n".join(titles))
        cal.add_component(event)
    ready = (
        await session.execute(
            select(Hold.id, Hold.shelf_until, Bib.title, Branch.name_ja, Branch.name_en)
            .join(Bib, Bib.id == Hold.bib_id)
            .join(Branch, Branch.id == Hold.pickup_branch_id)
            .where(Hold.patron_id == patron_id, Hold.status == "ready", Hold.shelf_until.is_not(None))
        )
    ).all()
    for hold_id, until, title, branch_ja, branch_en in ready:
        if until is None:
            continue
        event = Event()
        event.add("uid", f"hold-{hold_id}-{until.isoformat()}@{host}")
        event.add("dtstamp", stamp)
        event.add("dtstart", until)
        event.add("dtend", until + dt.timedelta(days=1))
        event.add("summary", f"予約の取置期限: {title}" if ja else f"Collect your hold by today: {title}")
        event.add("location", branch_ja if ja else branch_en)
        cal.add_component(event)
    return cal.to_ical()

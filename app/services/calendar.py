"""The library calendar: which days a branch is closed (休館日)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import ClosedDay

LOOKAHEAD_DAYS = 120


async def closed_days(session: AsyncSession, branch_id: int, start: dt.date, end: dt.date) -> set[dt.date]:
    rows = await session.scalars(
        select(ClosedDay.day).where(ClosedDay.branch_id == branch_id, ClosedDay.day.between(start, end))
    )
    return set(rows)


def is_closed(day: dt.date, closed_weekdays: str, closed: set[dt.date]) -> bool:
    return str(day.isoweekday()) in closed_weekdays or day in closed


def next_open_day(day: dt.date, closed_weekdays: str, closed: set[dt.date]) -> dt.date:
    """`day` itself if the branch is open then, else the first open day after it."""
    candidate = day
    for _ in range(LOOKAHEAD_DAYS):
        if not is_closed(candidate, closed_weekdays, closed):
            return candidate
        candidate += dt.timedelta(days=1)
    return day  # a branch closed for four months: keep the computed day rather than loop

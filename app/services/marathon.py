"""The reading marathon (読書マラソン, Koga): a goal of N loans between two dates, with progress."""

from __future__ import annotations

import datetime as dt
import unicodedata
from dataclasses import dataclass
from typing import Any, ClassVar

from sqlalchemy import Integer, Select, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.i18n import N_
from app.models import Loan, Marathon
from app.reads import Bound, Read
from app.services.refusal import Refused

MAX_GOAL = 10_000
MAX_DAYS = 3 * 366

MESSAGES = {
    "goal": N_("The goal is a number of books from 1 to %(max)s."),
    "dates": N_("Give a start and an end date (YYYY-MM-DD); the end must not be before the start."),
    "too_long": N_("A marathon can last at most three years."),
}


class MarathonRefused(Refused):
    messages = MESSAGES
    limits: ClassVar[dict[str, int]] = {"goal": MAX_GOAL}


@dataclass(frozen=True)
class Progress:
    id: int
    goal: int
    starts_on: dt.date
    ends_on: dt.date
    done: int

    @property
    def percent(self) -> int:
        return min(100, self.done * 100 // self.goal)

    @property
    def reached(self) -> bool:
        return self.done >= self.goal


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(unicodedata.normalize("NFKC", value).strip()[:10])
    except ValueError as exc:
        raise MarathonRefused("dates") from exc


async def start(session: AsyncSession, patron_id: int, *, goal: str, starts_on: str, ends_on: str) -> int:
    text = unicodedata.normalize("NFKC", goal).strip()
    if not text.isdigit() or not 1 <= int(text) <= MAX_GOAL:
        raise MarathonRefused("goal")
    first, last = _date(starts_on), _date(ends_on)
    if last < first:
        raise MarathonRefused("dates")
    if (last - first).days > MAX_DAYS:
        raise MarathonRefused("too_long")
    marathon = Marathon(patron_id=patron_id, goal=int(text), starts_on=first, ends_on=last)
    session.add(marathon)
    await session.commit()
    return marathon.id


def _progress_query() -> Select:
    patron_id = bindparam("patron_id", type_=Integer)
    done = (
        select(func.count(Loan.id))
        .where(
            Loan.patron_id == patron_id,
            Loan.loaned_on >= Marathon.starts_on,
            Loan.loaned_on <= Marathon.ends_on,
        )
        .correlate(Marathon)
        .scalar_subquery()
        .label("done")
    )
    return (
        select(Marathon.id, Marathon.goal, Marathon.starts_on, Marathon.ends_on, done)
        .where(Marathon.patron_id == patron_id)
        .order_by(Marathon.id.desc())
    )


_PROGRESS = Read(_progress_query)


def progress_read(patron_id: int) -> Bound:
    """Every marathon of the patron, newest first, with the loans made inside its dates: a list of
    Progress, alone or with other reads (app/reads.py)."""
    return Bound(_PROGRESS, {"patron_id": patron_id}, _progress)


def _progress(rows: list[Any]) -> list[Progress]:
    return [Progress(*row) for row in rows]


async def progress(session: AsyncSession, patron_id: int) -> list[Progress]:
    return await progress_read(patron_id).run(session)  # type: ignore[no-any-return]

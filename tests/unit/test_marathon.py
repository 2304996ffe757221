"""The reading marathon: goals validated, progress counted from loans in the window, a chart with text."""

from __future__ import annotations

import datetime as dt

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app import clock
from app.models import Marathon, Patron
from app.services import marathon
from tests.unit.conftest import csrf_from, login


@pytest.mark.parametrize(
    ("goal", "start", "end", "reason"),
    [
        ("0", "2026-01-01", "2026-12-31", "goal"),
        ("-1", "2026-01-01", "2026-12-31", "goal"),
        ("1000000000", "2026-01-01", "2026-12-31", "goal"),
        ("5", "2026-12-31", "2026-01-01", "dates"),
        ("5", "2026/01/01", "2026-12-31", "dates"),
        ("5", "2020-01-01", "2026-12-31", "too_long"),
    ],
)
async def test_bad_goals_are_refused(db: AsyncSession, goal: str, start: str, end: str, reason: str) -> None:
    hanako = await db.scalar(select(Patron.id).where(Patron.card_number == "100000017"))
    assert hanako is not None
    with pytest.raises(marathon.MarathonRefused) as problem:
        await marathon.start(db, hanako, goal=goal, starts_on=start, ends_on=end)
    assert problem.value.reason == reason
    assert await db.scalar(select(Marathon.id)) is None


async def test_progress_counts_loans_in_the_window(db: AsyncSession) -> None:
    hanako = await db.scalar(select(Patron.id).where(Patron.card_number == "100000017"))
    assert hanako is not None
    today = clock.today()
    await marathon.start(
        db,
        hanako,
        goal="３",
        starts_on=(today - dt.timedelta(days=30)).isoformat(),
        ends_on=today.isoformat(),
    )  # full-width digits accepted
    await marathon.start(
        db, hanako, goal="2", starts_on=(today - dt.timedelta(days=7)).isoformat(), ends_on=today.isoformat()
    )
    recent, month = await marathon.progress(db, hanako)
    assert (month.done, month.goal, month.percent, month.reached) == (3, 3, 100, True)  # all 3 demo loans
    assert (recent.done, recent.percent, recent.reached) == (1, 50, False)  # only the one from 5 days ago


async def test_marathon_page(client: AsyncTestClient) -> None:
    await client.get("/?lang=en")
    await login(client)
    page = await client.get("/marathon")
    csrf = csrf_from(page.text)
    today = clock.today()
    bad = await client.post(
        "/marathon",
        data={"_csrf_token": csrf, "goal": "0", "starts_on": today.isoformat(), "ends_on": today.isoformat()},
    )
    assert bad.status_code == 400 and "from 1 to 10000" in bad.text
    ok = await client.post(
        "/marathon",
        data={
            "_csrf_token": csrf,
            "goal": "4",
            "starts_on": (today - dt.timedelta(days=30)).isoformat(),
            "ends_on": today.isoformat(),
        },
        follow_redirects=False,
    )
    assert ok.status_code == 303
    shown = await client.get("/marathon")
    assert "<svg" in shown.text and "3 of 4 books (75%)" in shown.text and 'role="img"' in shown.text

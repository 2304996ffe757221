"""The reads that pick a few current rows out of growing tables do not slow down as history grows.

A patron's pages: the dashboard shows the news shown now, the reading marathon's count of loans
in its period and the patron's listed holds; the holds page lists those holds too. Each is
measured by the work the database does (SQLite: virtual machine steps; PostgreSQL: rows its
plan visits, EXPLAIN ANALYZE) after one year of history and after ten (bench/pages.py's
`_add_history`: news items, a heavy reader's returned loans and finished holds). Without
ix_news_current, ix_loans_patron_loaned and the holds statement's per-arm patron (migration
0017), the work grew with the history, about tenfold; now it stays within a small factor (what
still grows: the urgent news items ever published, a few a year, which the news read walks past).

The counter, a patron's hold and the background: the counter's pickup shelf, the applications
waiting for review, placing a hold (its lock on the patron's row), the mailer's look for news to
mail and mails that are due, and the daily jobs (pickup mails, expired holds, due reminders,
overdue notices), measured by every SELECT and UPDATE they send, as sent. Without migration 0018
(found by `python -m bench history`) each grew about tenfold on SQLite; on PostgreSQL the review
list and the mailer's look did (its planner fits `status = 'ready'` and `returned_on IS NULL` to
the partial indexes on allocated holds and open loans). Placing a hold locked the patron's row
with `SET id = id`, which made SQLite check every loan, hold and mail that refers to the patron.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from typing import Any

from sqlalchemy import make_url, select
from sqlalchemy.dialects import postgresql, sqlite

from app import clock
from app.db import session_scope
from app.models import Patron
from app.policy import get_policy
from app.reads import Read, _values
from app.services import holds, marathon, news, notices
from app.tasks.daily import run_day
from bench.history import Sent, holdable, postgres_work
from bench.pages import _add_history
from tests.support import BACKEND
from tests.unit.conftest import csrf_from, login, token

# Ten times the history may cost at most this much more work (the unindexed reads: ~10x).
MOST_GROWTH = 2.5


async def _patron(database_url: str) -> int:
    async with session_scope(database_url) as session:
        patron_id = await session.scalar(select(Patron.id).where(Patron.card_number == "100000017"))
    assert patron_id is not None
    return patron_id


def _reads(patron_id: int) -> dict[str, tuple[Read, dict[str, Any]]]:
    """Each read with its values, as the services bind them for the pages."""
    today = clock.today()
    listed = holds.lines_read(patron_id, today=today, policy=get_policy())
    return {
        name: (bound.read, bound.params)
        for name, bound in (
            ("news shown now", news.current_read(today)),
            ("marathon count", marathon.progress_read(patron_id)),
            ("dashboard holds", listed),
            ("holds page", dataclasses.replace(listed, read=holds._LIST)),  # list_holds: same values
        )
    }


async def _replayed(database_url: str, statements: list[tuple[str, Any]]) -> tuple[int, list[list[Any]]]:
    """The database's work for these statements (driver SQL and values), and each one's rows: run
    in a transaction that is rolled back (an UPDATE's work includes the foreign keys it checks).
    SQLite: virtual machine steps; PostgreSQL: rows its plans visit (EXPLAIN ANALYZE)."""
    if BACKEND == "postgresql":
        work, _, results = await postgres_work(database_url, statements, rows=True)
        return work, results
    connection = sqlite3.connect(str(make_url(database_url).database))
    connection.execute("PRAGMA foreign_keys=ON")  # as the app's connections
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0

    connection.set_progress_handler(count, 10)
    try:
        results = [connection.execute(sql, values).fetchall() for sql, values in statements]
        connection.rollback()
    finally:
        connection.close()
    return steps[0], results


async def _work(database_url: str, patron_id: int) -> dict[str, tuple[int, list[Any]]]:
    dialect = postgresql.asyncpg.dialect() if BACKEND == "postgresql" else sqlite.dialect()  # type: ignore[attr-defined]
    found = {}
    for name, (read, params) in _reads(patron_id).items():
        plan = read._plan(dialect)
        work, (rows,) = await _replayed(database_url, [(plan.sql, _values(plan, params))])
        found[name] = (work, rows)
    return found


async def test_current_rows_cost_the_same_after_ten_years_of_history(database_url: str) -> None:
    patron_id = await _patron(database_url)
    await _add_history(database_url, patron_id, years=1, seed=1)
    one_year = await _work(database_url, patron_id)
    # Nine more years before that one.
    await _add_history(database_url, patron_id, years=10, older_than_days=400, marathon=False, seed=2)
    ten_years = await _work(database_url, patron_id)
    grown = [
        f"{BACKEND} {name}: {one_year[name][0]} -> {ten_years[name][0]} with ten times the history"
        for name in one_year
        if ten_years[name][0] > MOST_GROWTH * one_year[name][0] + 20
    ]
    assert grown == []
    # The marathon counts this year's loans, of which the older history has none.
    assert ten_years["marathon count"][1] == one_year["marathon count"][1]
    assert ten_years["dashboard holds"][1] == one_year["dashboard holds"][1]


async def _counter_patron_and_jobs_work(client: Any, database_url: str, bib_id: int) -> dict[str, int]:
    """Each path's database work: two counter pages, a patron placing a hold on `bib_id`, the
    mailer's look, one day's jobs."""
    work = {}
    page = await client.get("/staff/login")
    form = {"_csrf_token": csrf_from(page.text), "username": "counter", "password": "counter-2026"}
    assert (await client.post("/staff/login", data=form, follow_redirects=False)).status_code == 303
    for page in ("/staff", "/staff/registrations"):
        with Sent() as sent:
            assert (await client.get(page)).status_code == 200
        work[page] = (await _replayed(database_url, sent.seen))[0]
    await client.post("/staff/logout", data={"_csrf_token": csrf_from((await client.get("/staff")).text)})
    assert (await login(client)).status_code == 303  # the heavy reader
    form = {
        "_csrf_token": await token(client, "/cart"),
        "bib": str(bib_id),
        "pickup": "1",
        "contact": "phone",
    }
    with Sent() as sent:
        placed = await client.post("/holds/place", data=form, follow_redirects=False)
    assert placed.status_code == 303 and placed.headers["location"] == "/holds/placed"
    work["placing a hold"] = (await _replayed(database_url, sent.seen))[0]
    async with session_scope(database_url) as session:
        with Sent() as sent:
            await news.fan_out(session, clock.now())
            await notices.claim_batch(session, now=clock.now(), worker_id="history-test")
        await session.rollback()
        work["mailer"] = (await _replayed(database_url, sent.seen))[0]
        with Sent() as sent:
            await run_day(session, clock.today(), get_policy())
        work["daily jobs"] = (await _replayed(database_url, sent.seen))[0]
    return work


async def test_counter_holds_mailer_and_daily_jobs_cost_the_same_after_ten_years_of_history(
    database_url: str, client: Any
) -> None:
    patron_id = await _patron(database_url)
    async with session_scope(database_url) as session:
        first, second = await holdable(session, patron_id)
    await _add_history(database_url, patron_id, years=1, seed=1)
    one_year = await _counter_patron_and_jobs_work(client, database_url, first)
    await _add_history(database_url, patron_id, years=10, older_than_days=400, marathon=False, seed=2)
    ten_years = await _counter_patron_and_jobs_work(client, database_url, second)
    grown = [
        f"{BACKEND} {name}: {one_year[name]} -> {ten_years[name]} with ten times the history"
        for name in one_year
        if ten_years[name] > MOST_GROWTH * one_year[name] + 50
    ]
    assert grown == []

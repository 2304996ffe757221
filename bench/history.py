"""Years of history: the database work of every page and of the daily jobs, at one age and at ten.

A library's tables only grow: returned loans, finished holds, old news and sent mails stay for
years. A read of "what is current" that walks the history instead of an index costs the same on a
new library and ten times as much after ten years, and no timing on a fresh database shows it
(the dashboard's news read did exactly that: 14 → 450 µs after five years, migration 0017). This
benchmark builds the same library twice, with `--years` and with `--factor` times as many years of
history (`bench.pages._add_history`), and counts the SQLite virtual machine steps that each GET
page, patron's and counter staff's, the changes made most (renew, place a hold, check out,
return), the mailer's look for mail to send and one run of the daily jobs take on each. Steps
count the work, not the time: the same on a busy machine, so one request per page is enough.
`--database postgresql` does the same on fresh PostgreSQL databases, where the work is the rows
the plans visit: each statement a path sent is run again under EXPLAIN ANALYZE (in a transaction
that is rolled back), after ANALYZE, as autovacuum would have kept the statistics.

    python -m bench history [--years 1] [--factor 10] [--keep DIR] [--database sqlite|postgresql]

A path whose work grows more than `GROWTH_LIMIT` times is marked: it reads history it does not
show. tests/unit/test_history_scaling.py checks the paths found here on both databases.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import urllib.parse
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bench.pages import BENCH_CARD, BENCH_PASSWORD, ROOT, _add_bench_patron, _run
from bench.summary import Row

GROWTH_LIMIT = 2.5  # as tests/unit/test_history_scaling.py
SLACK = 20  # steps or rows a path may gain besides: a few rows more is not a walk through history

# Every GET page with data of its own (the bench patron's, or the counter's at the central library).
PATRON_PAGES = (
    "/mylibrary",
    "/loans",
    "/holds",
    "/cart",
    "/search?q=%E3%81%AE",
    "/bibs/3",
    "/lists",
    "/favourites",
    "/history",
    "/history/csv",
    "/marathon",
    "/alerts",
    "/account/password",
    "/account/notices",
    "/account/emails",
    "/account/calendar",
    "/card",
)
STAFF_PAGES = (
    "/staff",
    f"/staff?card={BENCH_CARD}",
    "/staff/calendar",
    "/staff/notices",
    "/staff/news",
    "/staff/registrations",
)
STAFF_USER, STAFF_PASSWORD = "counter", "counter-2026"  # the demo data's counter staff
# What grows because what the page shows grows, not because it reads history it does not show.
SHOWN = {
    "/staff": "the count of failed mail: a failed notice stays failed (there is no 'dealt with')",
    "/staff/notices": "the failed mail itself, up to 200, newest first",
}

_steps = [0]
# The statement running now (its text with the values taken out), and the steps of each statement.
_current = [""]
_by_statement: dict[str, int] = {}
# PostgreSQL: the statements sent since _start(), as sent (driver SQL and values).
_sent: list[tuple[str, Any]] = []
_SELECTED = re.compile(r"SELECT .*? FROM")  # a statement's column list, left out of what is printed
_LITERALS = re.compile(r"'(?:[^']|'')*'|\b\d+(?:\.\d+)?\b")


def _count_steps() -> int:
    _steps[0] += 1
    _by_statement[_current[0]] = _by_statement.get(_current[0], 0) + 1
    return 0  # go on


def _shape(sql: str) -> str:
    """A statement's text without its values, one line."""
    return " ".join(_LITERALS.sub("?", sql).split())


def _statement_starts(sql: str) -> None:
    _current[0] = _shape(sql)


class Sent:
    """Every SELECT and UPDATE that SQLAlchemy sends while active, as sent (driver SQL and
    values), into `seen`."""

    def __init__(self, seen: list[tuple[str, Any]] | None = None) -> None:
        self.seen: list[tuple[str, Any]] = [] if seen is None else seen

    def __call__(self, conn: Any, cursor: Any, statement: str, parameters: Any, *rest: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "UPDATE")):
            self.seen.append((statement, tuple(parameters or ())))

    def __enter__(self) -> Sent:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        event.listen(Engine, "before_cursor_execute", self)
        return self

    def __exit__(self, *exc: object) -> None:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        event.remove(Engine, "before_cursor_execute", self)


def _record_postgres() -> None:
    """Keep every SELECT and UPDATE sent to PostgreSQL in `_sent`, for the rest of the process:
    SQLAlchemy's (the ORM's) and the hot reads' (app.reads, straight on the driver connection)."""
    from app import reads

    Sent(_sent).__enter__()
    fetch = reads._fetch

    async def recorded(driver: Any, dialect: Any, sql: str, values: list[Any]) -> Any:
        _sent.append((sql, tuple(values)))
        return await fetch(driver, dialect, sql, values)

    reads._fetch = recorded  # type: ignore[assignment]


def visited(plan: dict[str, Any]) -> int:
    """The rows a PostgreSQL plan node and those under it visited (EXPLAIN ANALYZE, FORMAT JSON):
    the rows each returned and each filtered out, times its loops."""
    loops = plan.get("Actual Loops", 1)
    own = (plan.get("Actual Rows", 0) + plan.get("Rows Removed by Filter", 0)) * loops
    return int(own + sum(visited(child) for child in plan.get("Plans", [])))


async def postgres_work(
    url: str, statements: list[tuple[str, Any]], *, rows: bool = False
) -> tuple[int, dict[str, int], list[list[Any]]]:
    """The rows PostgreSQL visits for these statements, in all and by statement, and (`rows`) each
    one's result: after ANALYZE, each run again under EXPLAIN ANALYZE, in one transaction that is
    rolled back."""
    import asyncpg

    from app.reads import asyncpg_dsn

    connection = await asyncpg.connect(asyncpg_dsn(url))
    by_statement: dict[str, int] = {}
    results: list[list[Any]] = []
    try:
        await connection.execute("ANALYZE")  # the statistics autovacuum would keep
        transaction = connection.transaction()
        await transaction.start()
        for sql, values in statements:
            explained = await connection.fetchval("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, *values)
            by_statement[_shape(sql)] = by_statement.get(_shape(sql), 0) + visited(
                json.loads(explained)[0]["Plan"]
            )
            if rows:
                results.append([tuple(row) for row in await connection.fetch(sql, *values)])
        await transaction.rollback()
    finally:
        await connection.close()
    return sum(by_statement.values()), by_statement, results


async def holdable(session: Any, patron_id: int, count: int = 2) -> list[int]:
    """Titles the patron may reserve: loanable, with loanable copies, not already held or
    borrowed by the patron."""
    from app.models import ACTIVE_HOLD_STATUSES, Bib, Hold, Item, Loan

    mine = select(Hold.bib_id).where(Hold.patron_id == patron_id, Hold.status.in_(ACTIVE_HOLD_STATUSES))
    borrowed = (
        select(Item.bib_id)
        .join(Loan, Loan.item_id == Item.id)
        .where(Loan.patron_id == patron_id, Loan.returned_on.is_(None))
    )
    copies = select(Item.bib_id).where(Item.loanable)
    bibs = await session.scalars(
        select(Bib.id)
        .where(Bib.loanable, Bib.id.in_(copies), Bib.id.not_in(mine), Bib.id.not_in(borrowed))
        .order_by(Bib.id)
        .limit(count)
    )
    return list(bibs)


def _counting_connect(connect: Any) -> Any:
    """sqlite3.connect, with every connection counting its VM steps into `_steps` (and by statement)."""

    def wrapped(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        connection = connect(*args, **kwargs)
        connection.set_progress_handler(_count_steps, 1)  # every step
        connection.set_trace_callback(_statement_starts)
        return connection

    return wrapped


def _start() -> None:
    _steps[0] = 0
    _by_statement.clear()
    _sent.clear()


async def _taken(steps: dict[str, Any], name: str) -> None:
    """What the path since _start() cost: SQLite's steps as counted, PostgreSQL's rows replayed."""
    url = os.environ["DATABASE_URL"]
    if url.startswith("postgresql"):
        work, by_statement, _ = await postgres_work(url, list(_sent))
        steps[name] = {"steps": work, "statements": by_statement}
    else:
        steps[name] = {"steps": _steps[0], "statements": dict(_by_statement)}


_FORM = {"content-type": "application/x-www-form-urlencoded"}


async def _form(client: Any, form: list[tuple[str, str]], token_from: str) -> bytes:
    """A form's body as a browser sends it, with the CSRF token of the page it came from."""
    _, body = await client.request("GET", token_from)
    token = re.search(rb'name="_csrf_token" value="([^"]+)"', body).group(1).decode()  # type: ignore[union-attr]
    return urllib.parse.urlencode([("_csrf_token", token), *form]).encode()


async def _post(client: Any, page: str, form: list[tuple[str, str]], token_from: str) -> int:
    status, _ = await client.request("POST", page, _FORM, await _form(client, form, token_from))
    return int(status)


async def _targets(url: str) -> dict[str, list[Any]]:
    """Two of each thing the measured changes act on (one for the warm-up, one measured): the
    bench patron's renewable loans, titles it may reserve, copies on the central library's shelf."""
    from sqlalchemy import text

    from app.db import session_scope

    async with session_scope(url) as db:
        patron = (
            await db.execute(text("SELECT id FROM patrons WHERE card_number = :c"), {"c": BENCH_CARD})
        ).scalar()
        loans = await db.execute(
            text(
                "SELECT id FROM loans WHERE patron_id = :p AND returned_on IS NULL AND renewals = 0"
                " ORDER BY id LIMIT 2"
            ),
            {"p": patron},
        )
        bibs = await holdable(db, patron)
        copies = await db.execute(
            text(
                "SELECT i.barcode FROM items i WHERE i.status = 'on_shelf' AND i.loanable AND i.branch_id = 1"
                " AND NOT EXISTS (SELECT 1 FROM holds h WHERE h.bib_id = i.bib_id AND h.status = 'waiting')"
                " ORDER BY i.id LIMIT 2"
            )
        )
        found = {
            "loans": list(loans.scalars()),
            "bibs": bibs,
            "copies": list(copies.scalars()),
        }
    assert all(len(v) == 2 for v in found.values()), found
    return found


async def _measure() -> dict[str, Any]:
    """In the child process: the steps of each page (one request after one warm-up), change,
    and background job, with the steps of each statement."""
    targets = await _targets(os.environ["DATABASE_URL"])
    if os.environ["DATABASE_URL"].startswith("postgresql"):
        _record_postgres()
    else:
        sqlite3.connect = _counting_connect(sqlite3.connect)  # before the app opens any connection
    from app import clock
    from app.db import session_scope
    from app.main import create_server_app
    from app.models import Branch
    from app.policy import get_policy
    from app.services import news, notices
    from app.tasks.daily import run_day
    from bench.inprocess import _Client, _lifespan

    app = create_server_app()
    task, inbox = await _lifespan(app)
    patron, staff = _Client(app), _Client(app)
    logged_in = [("card_number", BENCH_CARD), ("password", BENCH_PASSWORD), ("next", "/")]
    assert await _post(patron, "/login", logged_in, "/login") == 303
    assert (
        await _post(
            staff, "/staff/login", [("username", STAFF_USER), ("password", STAFF_PASSWORD)], "/staff/login"
        )
        == 303
    )
    steps: dict[str, Any] = {}
    for client, pages in ((patron, PATRON_PAGES), (staff, STAFF_PAGES)):
        for page in pages:
            status, _ = await client.request("GET", page)  # warm-up: plans, memos
            assert status == 200, (page, status)
            _start()
            await client.request("GET", page)
            await _taken(steps, page)
    # The changes a patron and the counter make most: each done twice, the second time measured.
    async with session_scope(os.environ["DATABASE_URL"]) as session:
        pickup = str(await session.scalar(select(Branch.id).order_by(Branch.id)))
    changes = {
        "renew a loan (POST)": [(patron, f"/loans/{loan}/renew", [], "/loans") for loan in targets["loans"]],
        "place a hold (POST /holds/place)": [
            (
                patron,
                "/holds/place",
                [("bib", str(bib)), ("pickup", pickup), ("location", ""), ("contact", "phone")],
                "/cart",
            )
            for bib in targets["bibs"]
        ],
        "check out (POST /staff/checkout)": [
            (staff, "/staff/checkout", [("card_number", "100000017"), ("barcode", code)], "/staff")
            for code in targets["copies"]
        ],
        "return (POST /staff/return)": [
            (staff, "/staff/return", [("barcode", code)], "/staff") for code in targets["copies"]
        ],
    }
    for name, (warm_up, measured) in changes.items():
        status = await _post(*warm_up)
        assert status < 400, (name, status)
        client, page, form, token_from = measured
        encoded = await _form(client, form, token_from)
        _start()  # the POST alone, not the page its token came from
        status, _ = await client.request("POST", page, _FORM, encoded)
        await _taken(steps, name)
        assert status < 400, (name, status)
    await inbox.put({"type": "lifespan.shutdown"})
    await asyncio.wait_for(task, 10)
    async with session_scope(os.environ["DATABASE_URL"]) as session:
        # What the mailer does every minute: library news to fan out, due notices to claim (given back).
        _start()
        await news.fan_out(session, clock.now())
        await notices.claim_batch(session, now=clock.now(), worker_id="history-audit")
        await session.rollback()  # before the replay, which would wait for the claim's row locks
        await _taken(steps, "mailer's look for due mails")
        _start()
        await run_day(session, clock.today(), get_policy())
        await _taken(steps, "daily jobs (run_day)")
    return steps


def _library(folder: Path, years: int, database: str) -> dict[str, str]:
    """A library with `years` of history: its environment. SQLite: a file in `folder`, made once and
    kept with --keep; PostgreSQL: a fresh database (dropped by the caller)."""
    from bench.search import fresh_postgres

    folder.mkdir(parents=True, exist_ok=True)
    postgres = database == "postgresql"
    env = {
        **os.environ,
        "APP_ENV": "test",
        "DATABASE_URL": fresh_postgres(f"bench_history_{years}y")
        if postgres
        else f"sqlite+aiosqlite:///{folder / 'bench.sqlite3'}",
        "VAR_DIR": str(folder),
        "REDIS_NAMESPACE": f"bench-history-{os.getpid()}-{years}",
        "SECRET_KEY": "h" * 48,
    }
    pristine = folder / "history.pristine.sqlite3"
    if postgres or not pristine.exists():
        _run([sys.executable, "-m", "app", "migrate"], env)
        _run([sys.executable, "-m", "app", "demo-data"], env)
        os.environ.update({k: env[k] for k in ("APP_ENV", "DATABASE_URL", "VAR_DIR", "SECRET_KEY")})
        asyncio.run(_add_bench_patron(env["DATABASE_URL"], years))  # PostgreSQL: ANALYZE too
        if not postgres:
            shutil.copyfile(folder / "bench.sqlite3", pristine)
    else:  # each run starts from the library as it was made (the daily jobs write notices)
        shutil.copyfile(pristine, folder / "bench.sqlite3")
    return env


def main(argv: list[str] | None = None, summary: list[Row] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench history", description=__doc__.split("\n\n")[0])
    parser.add_argument("--years", type=int, default=1, help="years of history in the first library")
    parser.add_argument("--factor", type=int, default=10, help="the second library has this many times more")
    parser.add_argument("--keep", default="", help="SQLite: make (or reuse) the two libraries in this folder")
    parser.add_argument("--database", default="sqlite", choices=("sqlite", "postgresql"))
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)  # the child's part
    args = parser.parse_args(argv)
    if args.measure:
        import uvloop

        print(json.dumps(uvloop.run(_measure())))
        return 0
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="mylib-history-"))
    ages = (args.years, args.years * args.factor)
    results = []
    for years in ages:
        env = _library(root / f"{years}y", years, args.database)
        child = [sys.executable, "-m", "bench", "history", "--measure"]
        try:
            run = subprocess.run(child, env=env, cwd=ROOT, check=True, stdout=subprocess.PIPE, text=True)
        finally:
            if args.database == "postgresql":
                from bench.search import drop_postgres

                drop_postgres(env["DATABASE_URL"])
        results.append(json.loads(run.stdout.strip().splitlines()[-1]))
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    few, many = results
    work = "PostgreSQL rows visited" if args.database == "postgresql" else "SQLite VM steps"
    print(f"\n{work} per request, {ages[0]} against {ages[1]} years of history")
    print(f"| page | {ages[0]} years | {ages[1]} years | growth | |")
    print("|---|---:|---:|---:|---|")
    grown: dict[str, list[tuple[str, int, int]]] = {}
    for name, counted in few.items():
        steps, more = counted["steps"], many[name]["steps"]
        flag = ""
        if more > GROWTH_LIMIT * steps + SLACK:
            flag = (
                f"grows with what it shows: {SHOWN[name]}"
                if name in SHOWN
                else f"**grows** (> {GROWTH_LIMIT}x)"
            )
            before, after = counted["statements"], many[name]["statements"]
            grown[name] = sorted(
                (
                    (sql, before.get(sql, 0), n)
                    for sql, n in after.items()
                    if n > GROWTH_LIMIT * before.get(sql, 0) + SLACK
                ),
                key=lambda row: row[1] - row[2],
            )
        growth = f"{more / steps:.1f}x" if steps else "–" if not more else "new"  # no SQL at all: "–"
        print(f"| {name} | {steps} | {more} | {growth} | {flag} |")
    faults = [name for name in grown if name not in SHOWN]
    print(f"\n{len(few) - len(faults)} of {len(few)} flat or growing only with what they show.")
    if summary is not None:
        summary.append(
            Row(
                "history",
                f"GET pages, the mailer's look, the daily jobs: {ages[0]} vs {ages[1]} years",
                args.database,
                size=f"{len(few)} paths",
                rate=f"{len(few) - len(faults)} of {len(few)} flat",
                target=f"≤ {GROWTH_LIMIT}x the {work}",
                met=not faults,
            )
        )
    for name, statements in grown.items():
        print(f"\n{name}: the statements that grow ({work} at {ages[0]} and {ages[1]} years)")
        for sql, before_steps, after_steps in statements:
            print(f"- {before_steps} → {after_steps}: {_SELECTED.sub('SELECT … FROM', sql, count=1)[:300]}")
    return 1 if faults else 0


if __name__ == "__main__":
    raise SystemExit(main())

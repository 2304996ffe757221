"""Circulation benchmark: returns with hold allocation, the daily jobs and mail delivery, in-process.

Three measurements, all on the app's own service functions and its normal writer engine (no web
server, so HTTP and templates do not blur what the database work costs):

1. Return → allocation. circulation.checkin() for `--returns` items at each catalogue size, with
   100 000 waiting holds spread over the catalogue. Half the returned titles have waiting holds (the
   copy goes to the first of them: hold shelf or transit), half have none (back on the shelf). The
   queue lookup and every other step are keyed by item, bib or hold, so the time and the number of
   SQL statements per return should not grow with the catalogue: that is what the table shows.
2. Daily jobs. tasks.daily.run_day() over 10 000 ready holds (half past their shelf deadline) and
   50 000 open loans whose due dates fall on reminder and overdue days: seconds, the counts it
   returns, and SQL statements per notice it creates (the jobs are per-row loops by design).
3. Mail delivery. tasks.mailer.deliver_pending() sending 1 000 pending notices to a local aiosmtpd
   that only counts messages: mails per second, i.e. the worker's own overhead per mail.

Rows go in with plain sqlite3 and executemany (bench/generate.py makes the bibs and items; the search
index is not built, nothing here reads it). Each database is a fresh file migrated by the app's CLI.

    python -m bench.circulation [--sizes 10000,1000000] [--returns 300] [--mails 1000]
                                [--databases sqlite,postgresql]

On PostgreSQL the same prepared rows are copied in (COPY) before either database is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import random
import shutil
import socket
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.generate import insert_rows
from bench.search import drop_postgres, migrate
from bench.summary import Row

ROOT = Path(__file__).resolve().parent.parent
TODAY = dt.date(2026, 6, 10)  # fixed, so every run allocates and notices the same way
WAITING_HOLDS = 100_000
HOLDS_PER_ALLOCATED_TITLE = 3  # waiting holds forced onto each returned title that should allocate
WARMUP_RETURNS = 10
DAILY_BIBS = 100_000  # ~140 000 items: room for 10 000 held copies and 50 000 loans
READY_HOLDS = 10_000
OPEN_LOANS = 50_000
PATRONS = 25_000
STAFF_ID = 1
SECRET = "x" * 48
ALLOCATED = "allocated to a hold"
SHELVED = "back on the shelf"


def _stamp(value: dt.datetime) -> str:
    """SQLAlchemy's SQLite DateTime text, so the app compares and orders our rows like its own."""
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def _percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation)."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered)) - 1))]


# ---------------------------------------------------------------- database set-up


def make_database(directory: Path, name: str) -> tuple[str, str]:
    """A freshly migrated SQLite file (the app's own `migrate`); returns (url, path)."""
    path = directory / f"{name}.sqlite3"
    url = f"sqlite+aiosqlite:///{path}"
    migrate(url, directory / f"var-{name}")
    return url, str(path)


def to_postgres(sqlite_path: str, directory: Path, name: str) -> str:
    """The same rows in a fresh PostgreSQL database migrated by the app's CLI; returns its URL.

    Rows are set up once with sqlite3 (above) and copied table by table with COPY, in foreign-key
    order, so both databases are measured on identical data. Sequences then continue after the
    copied ids.
    """
    import psycopg

    from app.models import Base
    from bench.search import fresh_postgres

    url = fresh_postgres(f"bench_circ_{name.replace('-', '_')}")
    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    migrate(url, directory / f"var-{name}-pg")
    source = sqlite3.connect(sqlite_path)
    tables = [t for t in Base.metadata.sorted_tables if t.name != "alembic_version"]
    try:
        with psycopg.connect(dsn) as target:
            target.execute("TRUNCATE " + ", ".join(t.name for t in tables) + " CASCADE")
            for table in tables:
                columns = [c.name for c in table.columns]
                booleans = {n for n, c in enumerate(table.columns) if c.type.python_type is bool}
                listed = ", ".join(columns)
                rows = source.execute(f"SELECT {listed} FROM {table.name}")
                with target.cursor().copy(f"COPY {table.name} ({listed}) FROM STDIN") as copy:
                    for row in rows:
                        if booleans:
                            row = tuple(
                                bool(v) if n in booleans and v is not None else v for n, v in enumerate(row)
                            )
                        copy.write_row(row)
                if "id" in table.columns and table.columns["id"].primary_key:
                    target.execute(
                        f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                        f"coalesce((SELECT max(id) FROM {table.name}), 0) + 1, false)"
                    )
            target.execute("ANALYZE")
    finally:
        source.close()
    return url


@contextmanager
def bulk(path: str) -> Iterator[sqlite3.Connection]:
    """A plain sqlite3 connection for loading rows fast; one transaction, committed at the end."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA synchronous=OFF")
    try:
        with db:
            yield db
    finally:
        db.close()


def add_patrons(db: sqlite3.Connection, n: int, rng: random.Random, *, notify_share: float = 0.0) -> None:
    """n patrons with far-future cards; every other one has a confirmed default email."""
    patrons = [
        (
            i,
            f"{100_000_000 + i:09d}",
            "2099-12-31",
            f"利用者 {i}",
            "none",
            "ja",
            int(rng.random() < notify_share),
            int(rng.random() < notify_share),
        )
        for i in range(1, n + 1)
    ]
    db.executemany(
        "INSERT INTO patrons (id, card_number, card_expires_on, name, password_state, lang, notify_due, "
        "notify_overdue, notify_expiry, notify_pickup, notify_arrivals, notify_news, name_en, name_kana, "
        "phone, address, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, 1, 0, 0, '', '', '', '', "
        "CURRENT_TIMESTAMP)",
        patrons,
    )
    db.executemany(
        "INSERT INTO emails (patron_id, address, confirmed_at, is_default, default_on_confirm, "
        "holds_on_confirm, created_at) VALUES (?, ?, '2026-01-01 00:00:00.000000', 1, 0, 0, "
        "CURRENT_TIMESTAMP)",
        [(i, f"patron{i}@example.jp") for i in range(1, n + 1, 2)],
    )
    if db.execute("SELECT count(*) FROM staff_users").fetchone()[0] == 0:
        db.execute(
            "INSERT INTO staff_users (id, username, display_name, password_hash, role, branch_id, active) "
            "VALUES (?, 'bench', 'ベンチ', 'x', 'counter', 1, 1)",
            (STAFF_ID,),
        )


_HOLD_INSERT = (
    "INSERT INTO holds (patron_id, bib_id, status, placed_at, pickup_branch_id, contact, channel, item_id, "
    "ready_on, notified_on, shelf_until) VALUES (?, ?, ?, ?, ?, ?, 'web', ?, ?, ?, ?)"
)


@dataclass
class HoldPlacer:
    """Waiting holds with unique (patron, bib) pairs, as the app's partial unique index demands."""

    rng: random.Random
    patrons: int
    used: set[tuple[int, int]] = field(default_factory=set)

    def pair(self, bib_id: int) -> tuple[int, int]:
        while True:
            patron = self.rng.randint(1, self.patrons)
            if (patron, bib_id) not in self.used:
                self.used.add((patron, bib_id))
                return patron, bib_id

    def waiting(self, bib_id: int, placed: dt.datetime) -> tuple[object, ...]:
        patron, bib = self.pair(bib_id)
        contact = "email" if self.rng.random() < 0.8 else "phone"
        return (
            patron,
            bib,
            "waiting",
            _stamp(placed),
            self.rng.randint(1, 3),
            contact,
            None,
            None,
            None,
            None,
        )


def add_waiting_holds(
    db: sqlite3.Connection, placer: HoldPlacer, n_bibs: int, n: int, *, on: list[int], avoid: set[int]
) -> None:
    """n waiting holds: HOLDS_PER_ALLOCATED_TITLE on each bib of `on`, the rest anywhere but `avoid`."""
    rng = placer.rng
    start = dt.datetime.combine(TODAY, dt.time()) - dt.timedelta(days=365)
    rows = [
        placer.waiting(bib, start + dt.timedelta(seconds=rng.randrange(365 * 86_400), microseconds=k))
        for bib in on
        for k in range(HOLDS_PER_ALLOCATED_TITLE)
    ]
    while len(rows) < n:
        bib = rng.randint(1, n_bibs)
        if bib not in avoid:
            placed = start + dt.timedelta(
                seconds=rng.randrange(365 * 86_400), microseconds=rng.randrange(10**6)
            )
            rows.append(placer.waiting(bib, placed))
    db.executemany(_HOLD_INSERT, rows)


def first_items(db: sqlite3.Connection, bib_ids: list[int]) -> dict[int, tuple[int, str, int]]:
    """bib id → (item id, barcode, branch id) of its lowest-numbered item."""
    out: dict[int, tuple[int, str, int]] = {}
    for bib_id in bib_ids:
        row = db.execute(
            "SELECT id, barcode, branch_id FROM items WHERE bib_id = ? ORDER BY id LIMIT 1", (bib_id,)
        ).fetchone()
        out[bib_id] = (row[0], row[1], row[2])
    return out


def lend(db: sqlite3.Connection, loans: list[tuple[int, int, int, dt.date]]) -> None:
    """Open loans (item id, patron id, branch id, due date); their items become on_loan."""
    db.executemany(
        "INSERT INTO loans (item_id, patron_id, branch_id, loaned_on, due_on, renewals) "
        "VALUES (?, ?, ?, ?, ?, 0)",
        [(i, p, b, (due - dt.timedelta(days=14)).isoformat(), due.isoformat()) for i, p, b, due in loans],
    )
    db.executemany("UPDATE items SET status = 'on_loan' WHERE id = ?", [(i,) for i, *_ in loans])


# ---------------------------------------------------------------- 1. return → allocation


@dataclass(frozen=True)
class Return:
    barcode: str
    branch_id: int
    expect_hold: bool


@dataclass
class ReturnTimings:
    size: int
    setup_seconds: float
    ms: dict[str, list[float]] = field(default_factory=dict)
    statements: dict[str, list[int]] = field(default_factory=dict)
    unexpected: int = 0  # outcome differed from the set-up (should stay 0)


def setup_returns(path: str, n_bibs: int, n_returns: int, seed: int) -> list[Return]:
    """Patrons, 100 000 waiting holds and open loans for the items to return; half the titles held."""
    rng = random.Random(f"returns-{seed}")
    titles = rng.sample(range(1, n_bibs + 1), n_returns)
    held, unheld = titles[::2], titles[1::2]
    with bulk(path) as db:
        add_patrons(db, PATRONS, rng)
        placer = HoldPlacer(rng, PATRONS)
        add_waiting_holds(db, placer, n_bibs, WAITING_HOLDS, on=held, avoid=set(unheld))
        items = first_items(db, titles)
        lend(db, [(items[b][0], rng.randint(1, PATRONS), items[b][2], TODAY) for b in titles])
    # Interleaved, so both outcomes are measured across the whole run; returned at a random branch.
    with_holds = set(held)
    return [Return(items[b][1], rng.randint(1, 3), b in with_holds) for b in titles]


def count_statements(engine: AsyncEngine) -> list[int]:
    """A one-cell counter of the SQL statements the engine sends (before_cursor_execute)."""
    counter = [0]

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _count(*_args: Any) -> None:
        counter[0] += 1

    return counter


async def measure_returns(url: str, size: int, returns: list[Return], setup_seconds: float) -> ReturnTimings:
    from app import db
    from app.policy import load_policy
    from app.services import circulation

    policy = load_policy("default")
    engine = db.make_engine(url)
    maker = db.make_sessionmaker(engine)
    counter = count_statements(engine)
    result = ReturnTimings(size, setup_seconds)
    try:
        for n, ret in enumerate(returns):
            async with maker() as session:
                before = counter[0]
                started = time.perf_counter()
                outcome = await circulation.checkin(
                    session,
                    barcode=ret.barcode,
                    branch_id=ret.branch_id,
                    staff_id=STAFF_ID,
                    today=TODAY,
                    policy=policy,
                )
                elapsed = (time.perf_counter() - started) * 1000
                statements = counter[0] - before
            if n < WARMUP_RETURNS:
                continue
            kind = SHELVED if outcome.action == "returned" else ALLOCATED
            result.unexpected += (kind == ALLOCATED) != ret.expect_hold
            result.ms.setdefault(kind, []).append(elapsed)
            result.statements.setdefault(kind, []).append(statements)
    finally:
        await engine.dispose()
    return result


def print_returns(results: list[ReturnTimings]) -> None:
    print("| catalogue | holds waiting | returns | outcome | p50 ms | p95 ms | statements/return |")
    print("|---:|---:|---:|---|---:|---:|---:|")
    for r in results:
        for kind in (ALLOCATED, SHELVED):
            ms, stmts = r.ms.get(kind, []), r.statements.get(kind, [])
            if not ms:
                print(f"| {r.size:,} | {WAITING_HOLDS:,} | 0 | {kind} | – | – | – |")
                continue
            print(
                f"| {r.size:,} | {WAITING_HOLDS:,} | {len(ms)} | {kind} | {statistics.median(ms):.2f} | "
                f"{_percentile(ms, 95):.2f} | {statistics.mean(stmts):.1f} |"
            )
    print()
    for r in results:
        every = [s for stmts in r.statements.values() for s in stmts]
        spread = f"{min(every)}–{max(every)}" if every else "–"
        note = f"; {r.unexpected} outcome(s) not as set up" if r.unexpected else ""
        print(
            f"- {r.size:,} bibs: set-up {r.setup_seconds:.1f} s; statements per return "
            f"mean {statistics.mean(every) if every else 0:.1f} (range {spread}){note}"
        )
    print()


# ---------------------------------------------------------------- 2. daily jobs


@dataclass(frozen=True)
class DailyResult:
    setup_seconds: float
    seconds: float
    counts: dict[str, int]
    notices_made: int
    statements: int


def setup_daily(path: str, seed: int, policy_due_days: int) -> None:
    """10 000 ready holds on distinct held copies (half expire today) and 50 000 open loans."""
    rng = random.Random(f"daily-{seed}")
    day = TODAY
    with bulk(path) as db:
        add_patrons(db, PATRONS, rng, notify_share=0.7)
        n_bibs = db.execute("SELECT max(id) FROM bibs").fetchone()[0]
        placer = HoldPlacer(rng, PATRONS)
        add_waiting_holds(db, placer, n_bibs, WAITING_HOLDS, on=[], avoid=set())
        items = db.execute("SELECT id, bib_id, branch_id FROM items ORDER BY id").fetchall()
        rng.shuffle(items)
        shelf, lent = items[:READY_HOLDS], items[READY_HOLDS : READY_HOLDS + OPEN_LOANS]
        ready_rows = []
        for k, (item_id, bib_id, branch_id) in enumerate(shelf):
            patron, _ = placer.pair(bib_id)
            shelf_until = day - dt.timedelta(days=1) if k % 2 == 0 else day + dt.timedelta(days=6)
            placed = dt.datetime.combine(day, dt.time()) - dt.timedelta(days=30, seconds=k)
            ready_rows.append(
                (
                    patron,
                    bib_id,
                    "ready",
                    _stamp(placed),
                    branch_id,
                    "email",
                    item_id,
                    (day - dt.timedelta(days=1)).isoformat(),
                    day.isoformat(),
                    shelf_until.isoformat(),
                )
            )
        db.executemany(_HOLD_INSERT, ready_rows)
        db.executemany("UPDATE items SET status = 'on_hold_shelf' WHERE id = ?", [(i,) for i, *_ in shelf])
        # Due dates from 20 days ago to 14 days ahead: some on the reminder day, some 1 or 8 days late.
        offsets = list(range(-20, 15))
        assert policy_due_days in offsets and -1 in offsets and -8 in offsets
        lend(
            db,
            [
                (item_id, rng.randint(1, PATRONS), branch_id, day + dt.timedelta(days=rng.choice(offsets)))
                for item_id, _, branch_id in lent
            ],
        )


async def measure_daily(url: str, setup_seconds: float) -> DailyResult:
    from sqlalchemy import func, select

    from app import db
    from app.models import Notice
    from app.policy import load_policy
    from app.tasks.daily import run_day

    policy = load_policy("default")
    engine = db.make_engine(url)
    maker = db.make_sessionmaker(engine)
    try:
        async with maker() as session:
            before_notices = await session.scalar(select(func.count()).select_from(Notice)) or 0
        counter = count_statements(engine)
        async with maker() as session:
            started = time.perf_counter()
            counts = await run_day(session, TODAY, policy)
            seconds = time.perf_counter() - started
        statements = counter[0]
        async with maker() as session:
            after_notices = await session.scalar(select(func.count()).select_from(Notice)) or 0
    finally:
        await engine.dispose()
    return DailyResult(setup_seconds, seconds, counts, after_notices - before_notices, statements)


def print_daily(r: DailyResult) -> None:
    per_notice = f"{r.statements / r.notices_made:.1f}" if r.notices_made else "–"
    print(
        "| daily jobs | ready holds | open loans | seconds | notices made | statements | statements/notice |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    print(
        f"| run_day({TODAY}) | {READY_HOLDS:,} | {OPEN_LOANS:,} | {r.seconds:.1f} | {r.notices_made:,} | "
        f"{r.statements:,} | {per_notice} |"
    )
    print()
    print(
        f"- set-up {r.setup_seconds:.1f} s; run_day returned "
        + ", ".join(f"{k} {v:,}" for k, v in r.counts.items())
    )
    print()


# ---------------------------------------------------------------- 3. mail delivery


class CountingHandler:
    """aiosmtpd handler that accepts and counts every message (runs on the controller's thread)."""

    def __init__(self) -> None:
        self.received = 0

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        self.received += 1
        return "250 OK"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class MailResult:
    queued: int
    seconds: float
    result: dict[str, int]
    received: int


def setup_mails(path: str, n: int) -> None:
    """n pending card-expiry notices, due already, for patrons with a confirmed email."""
    with bulk(path) as db:
        add_patrons(db, 2 * n, random.Random("mails"))
        db.executemany(
            "INSERT INTO notices (type, patron_id, dedup_key, payload, status, attempts, next_attempt_at, "
            "created_at) VALUES ('card_expiry', ?, ?, '{\"expires_on\": \"2030-01-01\"}', 'pending', 0, "
            "'2000-01-01 00:00:00.000000', CURRENT_TIMESTAMP)",
            [(2 * k + 1, f"bench:card_expiry:{k}") for k in range(n)],  # odd ids have confirmed emails
        )


async def deliver_to_counting_smtp(url: str, directory: Path) -> tuple[float, dict[str, int], int]:
    """deliver_pending() to a local aiosmtpd that only counts: (seconds, its result, mails received)."""
    from aiosmtpd.controller import Controller

    from app import db
    from app.settings import load_settings
    from app.tasks.mailer import deliver_pending

    handler = CountingHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    settings = load_settings(
        {
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(port),
            "DATABASE_URL": url,
            "VAR_DIR": str(directory / "var-mails"),
            "SECRET_KEY": SECRET,
            "APP_ENV": "test",
        }
    )
    engine = db.make_engine(url)
    try:
        started = time.perf_counter()
        result = await deliver_pending(db.make_sessionmaker(engine), settings)
        seconds = time.perf_counter() - started
    finally:
        await engine.dispose()
        controller.stop()
    return seconds, result, handler.received


async def measure_mails(url: str, directory: Path, n: int) -> MailResult:
    seconds, result, received = await deliver_to_counting_smtp(url, directory)
    return MailResult(n, seconds, result, received)


def print_mails(r: MailResult) -> None:
    print("| mails | seconds | mails/s |")
    print("|---:|---:|---:|")
    print(f"| {r.queued:,} | {r.seconds:.2f} | {r.queued / r.seconds:.0f} |")
    print()
    check = "ok" if r.received == r.queued == r.result.get("sent") else "MISMATCH"
    print(f"- deliver_pending returned {r.result}; the SMTP server received {r.received:,} ({check})")


# ---------------------------------------------------------------- main


def summary_rows(
    returns: dict[str, list[ReturnTimings]], daily: dict[str, DailyResult], mails: dict[str, MailResult]
) -> list[Row]:
    """The circulation rows of the one table (no targets are set for these: figures only)."""
    rows = []
    for backend, timings in returns.items():
        for r in timings:
            for kind in (ALLOCATED, SHELVED):
                ms = r.ms.get(kind, [])
                if ms:
                    rows.append(
                        Row(
                            "circulation",
                            f"return → {kind}",
                            backend,
                            size=f"{r.size:,}",
                            p50_ms=statistics.median(ms),
                            tail=f"p95 {_percentile(ms, 95):.2f}",
                        )
                    )
        if backend in daily:
            d = daily[backend]
            what = f"daily jobs ({READY_HOLDS:,} ready holds, {OPEN_LOANS:,} loans)"
            rows.append(Row("circulation", what, backend, rate=f"{d.seconds:.1f} s"))
        if backend in mails:
            m = mails[backend]
            rate = f"{m.queued / m.seconds:.0f}/s"
            rows.append(Row("circulation", "mails sent", backend, size=f"{m.queued:,}", rate=rate))
    return rows


def main(argv: list[str] | None = None, summary: list[Row] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,1000000", help="comma-separated bib counts for returns")
    parser.add_argument("--returns", type=int, default=300, help="measured returns per catalogue size")
    parser.add_argument("--mails", type=int, default=1000, help="pending notices to deliver")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the generated files (path is printed)")
    parser.add_argument("--databases", default="sqlite,postgresql", help="sqlite, postgresql or both")
    args = parser.parse_args(argv)
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    backends = [b.strip() for b in args.databases.split(",") if b.strip()]

    from app.policy import load_policy

    directory = Path(tempfile.mkdtemp(prefix="bench-circulation-", dir="/tmp"))
    # run_day() reads get_settings() (for the uploads folder): point it at this run's files.
    os.environ.update({"VAR_DIR": str(directory / "var-daily"), "SECRET_KEY": SECRET, "APP_ENV": "test"})

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    def urls(url: str, path: str, name: str) -> dict[str, str]:
        """The prepared SQLite file, and a PostgreSQL copy made before either is measured."""
        out = {}
        if "postgresql" in backends:
            started = time.perf_counter()
            out["postgresql"] = to_postgres(path, directory, name)
            log(f"{name}: copied to PostgreSQL in {time.perf_counter() - started:.1f} s")
        if "sqlite" in backends:
            out["sqlite"] = url
        return out

    returns: dict[str, list[ReturnTimings]] = {b: [] for b in backends}
    daily: dict[str, DailyResult] = {}
    mails: dict[str, MailResult] = {}
    made: list[str] = []
    try:
        for size in sizes:
            started = time.perf_counter()
            url, path = make_database(directory, f"returns-{size}")
            items = insert_rows(path, size, args.seed)
            plan = setup_returns(path, size, WARMUP_RETURNS + args.returns, args.seed)
            setup = time.perf_counter() - started
            log(f"{size:,} bibs, {items:,} items, {WAITING_HOLDS:,} holds: set-up {setup:.1f} s")
            for backend, target in urls(url, path, f"returns-{size}").items():
                made.append(target)
                returns[backend].append(asyncio.run(measure_returns(target, size, plan, setup)))

        started = time.perf_counter()
        url, path = make_database(directory, "daily")
        insert_rows(path, DAILY_BIBS, args.seed)
        setup_daily(path, args.seed, load_policy("default").due_reminder_days)
        setup = time.perf_counter() - started
        log(f"daily jobs: set-up {setup:.1f} s")
        for backend, target in urls(url, path, "daily").items():
            made.append(target)
            os.environ["DATABASE_URL"] = target
            daily[backend] = asyncio.run(measure_daily(target, setup))

        url, path = make_database(directory, "mails")
        insert_rows(path, 10, args.seed)  # branches (and a few bibs)
        setup_mails(path, args.mails)
        for backend, target in urls(url, path, "mails").items():
            made.append(target)
            mails[backend] = asyncio.run(measure_mails(target, directory, args.mails))
    finally:
        if args.keep:
            log(f"databases kept in {directory} (and PostgreSQL: {[u for u in made if 'postgresql' in u]})")
        else:
            shutil.rmtree(directory, ignore_errors=True)
            for target in made:
                if target.startswith("postgresql"):
                    drop_postgres(target)

    for backend in backends:
        print(f"### {'PostgreSQL' if backend == 'postgresql' else 'SQLite'}\n")
        print_returns(returns[backend])
        print_daily(daily[backend])
        print_mails(mails[backend])
        print()
    if summary is not None:
        summary.extend(summary_rows(returns, daily, mails))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Engine and session factories; one engine per process, made from the settings."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, make_url
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from app.sqlite_inline import inline_creator, inline_writer_creator


def dialect_insert(session: AsyncSession) -> Callable[..., Any]:
    """The INSERT construct with ON CONFLICT for the session's database (PostgreSQL or SQLite)."""
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def make_engine(
    url: str, *, inline_reads: bool = False, inline_writes: bool = False, lock_timeout: float = 15.0
) -> AsyncEngine:
    """An engine with the pragmas SQLite needs for a web app (WAL, foreign keys, busy wait).

    lock_timeout: how long a statement waits for a lock another connection holds (SQLite's busy
    wait, retried by the driver; PostgreSQL's lock_timeout) before it fails with an error that
    `is_busy` recognises and the web app answers with 503 "try again", never a 500.

    inline_reads: on SQLite, run statements on the event loop (app/sqlite_inline.py); only for
    read-only work, which in WAL mode never waits for a lock. Ignored on other databases.

    inline_writes: on SQLite, the web process's writing connections run inline too and take the
    write lock with BEGIN IMMEDIATE just before a transaction's first change, waiting for it
    without blocking the loop (app/sqlite_inline.py), so the lock is held only for the SQLite work.
    Ignored on other databases, where writers do run side by side.
    """
    if url.startswith("sqlite"):
        if inline_reads:
            path = make_url(url).database or ":memory:"
            engine = create_async_engine(url, async_creator=inline_creator(path))
        elif inline_writes:
            path = make_url(url).database or ":memory:"
            engine = create_async_engine(
                url, async_creator=inline_writer_creator(path, lock_timeout), pool_timeout=60
            )
        else:
            engine = create_async_engine(url, connect_args={"timeout": lock_timeout})

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    engine = create_async_engine(
        url,
        # 20 kept, none made for a moment: QueuePool closes an overflow connection as it comes back
        # whenever its 10 kept ones are idle, and at 32 requests at once that happened hundreds of
        # times a second (the renew fragment: 456 new PostgreSQL sessions in 5 s, each connect with
        # its type introspection, and 1 150 -> 740 req/s). The same 20 at most, opened as the load
        # needs them (HikariCP also advises a fixed-size pool).
        pool_size=20,
        max_overflow=0,
        connect_args={"server_settings": pg_server_settings(lock_timeout)},
    )
    ping_when_idle(engine)
    return engine


# A pooled connection used again within this many seconds is handed out without a ping: HikariCP's
# aliveBypassWindow (500 ms there too). pool_pre_ping pinged at every checkout, and SQLAlchemy's
# asyncpg ping is three round trips (BEGIN, an empty statement, ROLLBACK: for pgbouncer) before a
# writing request's first statement. Under load every connection comes back within milliseconds,
# so that is saved where it counts; after a quiet spell, when a server restart or an idle timeout
# drops connections, each one is checked before use as pool_pre_ping would.
PING_AFTER_IDLE = 0.5


def ping_when_idle(engine: AsyncEngine) -> None:
    """Check a pooled connection with a ping when it has been idle longer than PING_AFTER_IDLE.

    A dead one makes SQLAlchemy's pool drop every connection opened before it (one dead after a
    quiet spell means the server went away) and hand out a new one: the page never sees it.
    """
    dialect = engine.dialect

    @event.listens_for(engine.sync_engine, "checkin")
    def _idle_since(_dbapi_conn, record):  # type: ignore[no-untyped-def]
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _ping_if_idle(dbapi_conn, record, _proxy):  # type: ignore[no-untyped-def]
        since = record.info.pop("idle_since", None)  # None: new, just connected
        if since is None or time.monotonic() - since <= PING_AFTER_IDLE:
            return
        try:
            dialect.do_ping(dbapi_conn)
        except Exception as error:
            raise sa_exc.InvalidatePoolError(
                f"ping failed after {time.monotonic() - since:.0f} s idle"
            ) from error


def pg_server_settings(lock_timeout: float) -> dict[str, str]:
    """What every PostgreSQL connection of the app sets (the engine's and the GET pages' reader's)."""
    return {
        "lock_timeout": str(int(lock_timeout * 1000)),
        # No JIT: asyncpg prepares every statement, and PostgreSQL's generic plan for the search
        # hits' availability counts (catalog._HITS_SQL) is costed high enough to be JIT-compiled at
        # every execution: 35 ms of compiling for 0.5 ms of work at 1 M titles (bench/search.py).
        # JIT pays off for long analytic queries, not for a page's.
        "jit": "off",
        # No parallel workers: starting two for a statement costs ~5 ms, where a page's statements
        # take well under one. The search's walk from the newest title (catalog._page) was planned
        # as a parallel index scan: 9.3 ms for 0.6 ms of work at 1 M titles. On two cores under a
        # web load the workers would only take CPU from the other requests.
        "max_parallel_workers_per_gather": "0",
    }


def is_busy(error: BaseException) -> bool:
    """A database error that means "locked by someone else for too long", worth trying again.

    SQLite: "database is locked" after the busy wait. PostgreSQL: lock_timeout (55P03) or a
    deadlock (40P01). SQLAlchemy's pool: no connection free in time.
    """
    if isinstance(error, sa_exc.TimeoutError):
        return True
    if not isinstance(error, sa_exc.DBAPIError):
        return False
    if "database is locked" in str(error.orig) or "database table is locked" in str(error.orig):
        return True
    code = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
    return code in ("55P03", "40P01")


def make_sessionmaker(
    engine: AsyncEngine, info: dict[str, Any] | None = None
) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, info=info)


@asynccontextmanager
async def session_scope(url: str) -> AsyncIterator[AsyncSession]:
    """A session on its own engine, for the CLI and tasks; disposed afterwards."""
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as session:
            yield session
    finally:
        await engine.dispose()

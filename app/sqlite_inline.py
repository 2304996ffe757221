"""An aiosqlite-shaped adapter that runs sqlite3 calls inline, without aiosqlite's worker thread.

Why: on this stack every aiosqlite call is a hop to a worker thread and back (about 150 µs each,
five or six per query), so a one-row read cost ~1 ms where SQLite itself needs ~20 µs
(docs/performance-notes.md). Reads from a WAL database never wait for a lock, so running them on
the event loop costs less than handing them to a thread.

Writes (`inline_writer_creator`): the one thing a write can wait for is SQLite's single write lock,
and that wait must not stall the loop. So the writer connection never lets SQLite wait (busy
timeout 0) and takes the lock itself, with `BEGIN IMMEDIATE` just before the transaction's first
change, retried with `await asyncio.sleep` (0.5 ms, doubling to 5 ms) until the lock timeout. Once
it holds the lock, the rest of the transaction runs inline: nothing yields to the event loop
between the first change and the COMMIT unless the service itself awaits something else, so the
lock is held for the SQLite work alone (micro- to milliseconds) instead of across event-loop turns
of a busy process (measured with `python -m bench load`: with aiosqlite's thread, two processes
under 200 patrons held the lock so long that writers waited seconds and some timed out).

SQLAlchemy's aiosqlite dialect accepts both through `async_creator`.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any


class InlineCursor:
    __slots__ = ("_cursor",)

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def __aenter__(self) -> InlineCursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    async def execute(self, sql: str, parameters: Sequence[Any] | dict[str, Any] = ()) -> InlineCursor:
        self._cursor.execute(sql, parameters)
        return self

    async def executemany(self, sql: str, seq: Iterable[Any]) -> InlineCursor:
        self._cursor.executemany(sql, seq)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(size if size is not None else self._cursor.arraysize)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()

    async def nextset(self) -> None:
        return None


# Statements that read and may run outside a transaction; anything else opens one (BEGIN IMMEDIATE).
_READS = ("SELECT", "PRAGMA", "EXPLAI", "VALUES")


class InlineWriterCursor(InlineCursor):
    __slots__ = ("_owner",)

    def __init__(self, cursor: sqlite3.Cursor, owner: InlineConnection) -> None:
        super().__init__(cursor)
        self._owner = owner

    async def execute(self, sql: str, parameters: Sequence[Any] | dict[str, Any] = ()) -> InlineCursor:
        if not self._owner._conn.in_transaction and not sql.lstrip()[:6].upper().startswith(_READS):
            await self._owner.begin_immediate()
        self._cursor.execute(sql, parameters)
        return self

    async def executemany(self, sql: str, seq: Iterable[Any]) -> InlineCursor:
        if not self._owner._conn.in_transaction:
            await self._owner.begin_immediate()
        self._cursor.executemany(sql, seq)
        return self


class _RunNow:
    """Stands in for aiosqlite's job queue when SQLAlchemy sets an isolation level."""

    def put_nowait(self, job: tuple[Any, Callable[[], None]]) -> None:
        future, function = job
        try:
            future.set_result(function())
        except Exception as error:  # handed back to the awaiting caller, as aiosqlite does
            future.set_exception(error)


class InlineConnection:
    def __init__(self, connection: sqlite3.Connection, lock_timeout: float | None = None) -> None:
        self._conn = connection
        self._connection = connection
        self._tx = _RunNow()
        self._lock_timeout = lock_timeout  # None: a reader

    async def begin_immediate(self) -> None:
        """Take SQLite's write lock, waiting without blocking the event loop; after the lock
        timeout, the "database is locked" error (a 503 "try again" in the web app)."""
        deadline, delay = time.monotonic() + (self._lock_timeout or 0.0), 0.0005
        while True:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() >= deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.005)

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    def cursor(self) -> InlineCursor:
        if self._lock_timeout is not None:
            return InlineWriterCursor(self._conn.cursor(), self)
        return InlineCursor(self._conn.cursor())

    async def commit(self) -> None:
        self._conn.commit()

    async def rollback(self) -> None:
        self._conn.rollback()

    async def close(self) -> None:
        self._conn.close()

    def stop(self) -> None:
        self._conn.close()

    async def create_function(self, *args: Any, **kw: Any) -> None:
        self._conn.create_function(*args, **kw)


def inline_creator(path: str, timeout: float = 2.0) -> Callable[[], Any]:
    """An `async_creator` for create_async_engine: opens `path` for inline use."""

    async def create() -> InlineConnection:
        return InlineConnection(sqlite3.connect(path, timeout=timeout, check_same_thread=False))

    return create


def inline_writer_creator(path: str, lock_timeout: float) -> Callable[[], Any]:
    """An `async_creator` for a web process's writes: see the module's docstring."""

    async def create() -> InlineConnection:
        # isolation_level=None: sqlite3 opens no transaction by itself; begin_immediate() does.
        # timeout=0: SQLite never sleeps on the event loop waiting for a lock.
        connection = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)
        return InlineConnection(connection, lock_timeout=lock_timeout)

    return create

"""The web process's SQLite writer (app/sqlite_inline.py): transactions are real, the write lock is
taken with BEGIN IMMEDIATE just before the first change, and waiting for it never blocks the loop.

SQLite-only by nature (PostgreSQL has no such connection); it runs in both suite runs, on its own
SQLite file.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from app.db import is_busy, make_engine, make_sessionmaker


@pytest.fixture
def path(tmp_path: Path) -> Path:
    file = tmp_path / "writer.sqlite3"
    with sqlite3.connect(file) as con:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("CREATE TABLE counters (id INTEGER PRIMARY KEY, value INTEGER NOT NULL)")
        con.execute("INSERT INTO counters VALUES (1, 0)")
    return file


def _value(path: Path) -> int:
    with sqlite3.connect(path) as con:
        return int(con.execute("SELECT value FROM counters WHERE id = 1").fetchone()[0])


def _hold_lock(path: Path, seconds: float) -> tuple[threading.Thread, threading.Event]:
    locked = threading.Event()

    def run() -> None:
        con = sqlite3.connect(path, isolation_level=None)
        con.execute("BEGIN IMMEDIATE")
        locked.set()
        time.sleep(seconds)
        con.execute("ROLLBACK")
        con.close()

    thread = threading.Thread(target=run)
    thread.start()
    assert locked.wait(5)
    return thread, locked


async def test_changes_are_one_transaction_and_a_rollback_undoes_them(path: Path) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{path}", inline_writes=True, lock_timeout=1)
    try:
        async with make_sessionmaker(engine)() as session:
            await session.execute(text("SELECT value FROM counters"))  # a read opens no transaction
            raw = (await (await session.connection()).get_raw_connection()).driver_connection
            assert not raw._conn.in_transaction
            await session.execute(text("UPDATE counters SET value = value + 1"))
            assert raw._conn.in_transaction  # BEGIN IMMEDIATE came before the change
            await session.execute(text("UPDATE counters SET value = value + 1"))
            assert _value(path) == 0  # others do not see it yet
            await session.rollback()
        assert _value(path) == 0
        async with make_sessionmaker(engine)() as session:
            await session.execute(text("UPDATE counters SET value = value + 5"))
            await session.commit()
        assert _value(path) == 5
    finally:
        await engine.dispose()


async def test_waiting_for_the_lock_leaves_the_event_loop_free(path: Path) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{path}", inline_writes=True, lock_timeout=5)
    ticks = 0
    waiting = True

    async def ticker() -> None:
        nonlocal ticks
        while waiting:
            ticks += 1
            await asyncio.sleep(0.01)

    try:
        thread, _ = _hold_lock(path, 0.5)
        running = asyncio.create_task(ticker())
        started = time.monotonic()
        async with make_sessionmaker(engine)() as session:
            await session.execute(text("UPDATE counters SET value = value + 1"))
            await session.commit()
        waited = time.monotonic() - started
        waiting = False
        await running
        thread.join()
        assert 0.3 < waited < 3 and _value(path) == 1
        assert ticks >= 20  # the loop kept running other work while this write waited
    finally:
        await engine.dispose()


async def test_a_lock_held_past_the_timeout_is_a_busy_error(path: Path) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{path}", inline_writes=True, lock_timeout=0.3)
    try:
        thread, _ = _hold_lock(path, 1.5)
        started = time.monotonic()
        with pytest.raises(OperationalError) as caught:
            async with make_sessionmaker(engine)() as session:
                await session.execute(text("UPDATE counters SET value = value + 1"))
        assert is_busy(caught.value) and 0.25 < time.monotonic() - started < 1.4
        thread.join()
        assert _value(path) == 0
    finally:
        await engine.dispose()

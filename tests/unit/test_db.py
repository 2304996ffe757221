"""app/db.py on PostgreSQL: the writers' pool keeps its connections and pings one only after it sat idle
(ping_when_idle); every connection of the app plans without JIT or parallel workers."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import event, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from app import db as db_module
from app import reads
from app.db import make_engine, make_sessionmaker, pg_server_settings
from app.models import Bib
from tests.support import BACKEND

pytestmark = pytest.mark.skipif(
    BACKEND != "postgresql", reason="the pool's ping is PostgreSQL's; SQLite has no connection to lose"
)


@asynccontextmanager
async def _counted(database_url: str) -> AsyncIterator[tuple[AsyncEngine, list[Any]]]:
    """The app's writing engine, with each ping it sends recorded."""
    engine = make_engine(database_url)
    pings: list[Any] = []
    ping = engine.dialect.do_ping

    def counted(dbapi_conn: Any) -> bool:
        pings.append(dbapi_conn)
        return ping(dbapi_conn)

    engine.dialect.do_ping = counted  # type: ignore[method-assign]
    try:
        yield engine, pings
    finally:
        await engine.dispose()


async def _rename_first_title(engine: AsyncEngine, title: str) -> None:
    async with make_sessionmaker(engine)() as session, session.begin():
        await session.execute(update(Bib).where(Bib.id == 1).values(title=title))


async def _drop_every_connection(database_url: str) -> int:
    """As a server restart or an idle timeout would: every other connection to the database ends."""
    admin = create_async_engine(database_url, poolclass=NullPool)
    try:
        async with admin.connect() as connection:
            return int(
                await connection.scalar(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                )
            )
    finally:
        await admin.dispose()


async def test_a_busy_pool_sends_no_ping(database_url: str) -> None:
    async with _counted(database_url) as (engine, pings):
        for n in range(20):  # one connection, back within the window each time
            await _rename_first_title(engine, f"題名 {n}")
        await asyncio.gather(*(_rename_first_title(engine, f"並行 {n}") for n in range(5)))
        assert pings == []
        async with make_sessionmaker(engine)() as session:
            assert (await session.scalar(select(Bib.title).where(Bib.id == 1))).startswith("並行 ")


async def test_an_idle_connection_is_pinged_before_use(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE", 0.05)
    async with _counted(database_url) as (engine, pings):
        await _rename_first_title(engine, "一回目")
        await asyncio.sleep(0.1)
        await _rename_first_title(engine, "二回目")
        assert len(pings) == 1
        await _rename_first_title(engine, "三回目")  # used again at once: no ping
        assert len(pings) == 1


async def test_connections_dropped_while_idle_are_replaced_unseen(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE", 0.05)
    async with _counted(database_url) as (engine, pings):
        # Three pooled connections, all idle: a server restart would take them all.
        sessions = [make_sessionmaker(engine)() for _ in range(3)]
        for session in sessions:
            await session.connection()
        for session in sessions:
            await session.close()
        assert engine.pool.checkedin() == 3
        assert await _drop_every_connection(database_url) >= 3
        await asyncio.sleep(0.1)
        # Each writer gets a live connection; the first failed ping dropped the whole pool, so the
        # others were made anew, without a ping.
        for n in range(3):
            await _rename_first_title(engine, f"再接続 {n}")
        assert len(pings) == 1
        async with make_sessionmaker(engine)() as session:
            assert (
                await session.scalar(select(func.count(Bib.id)).where(Bib.title.startswith("再接続 "))) == 1
            )


async def test_a_busy_pool_keeps_its_connections(database_url: str) -> None:
    """Bursts of 25 writers at once: the connections opened for the first burst serve the others
    (a pool with overflow closed and reopened ten of them at each burst)."""
    async with _counted(database_url) as (engine, pings):
        connects: list[object] = []
        event.listen(engine.sync_engine, "connect", lambda *_: connects.append(1))

        async def write(n: int) -> None:
            async with make_sessionmaker(engine)() as session, session.begin():
                await session.execute(update(Bib).where(Bib.id == 1 + n % 5).values(title=f"並行 {n}"))
                await asyncio.sleep(0.005)  # held a while, as a page's work would

        await asyncio.gather(*(write(n) for n in range(25)))
        opened = len(connects)
        assert 1 <= opened <= 20  # at most 20 at once: the rest waited their turn
        for _ in range(5):
            await asyncio.gather(*(write(n) for n in range(25)))
        assert len(connects) == opened
        assert pings == []


async def test_every_connection_plans_without_jit_or_parallel_workers(database_url: str) -> None:
    """The writers' connections and both of the GET pages' reader pools: a page's statement never
    pays for JIT compiling or for starting parallel workers (app/db.pg_server_settings)."""
    show = (
        "SELECT current_setting('jit') AS jit, current_setting('max_parallel_workers_per_gather') AS workers"
    )
    engine = make_engine(database_url)
    info = await reads.pg_reader(
        database_url, engine.dialect, server_settings=pg_server_settings(10.0), size=2
    )
    try:
        async with make_sessionmaker(engine)() as session:
            assert tuple((await session.execute(text(show))).one()) == ("off", "0")
        async with make_sessionmaker(engine, info=info)() as reader:
            assert (await reads.sql_rows(reader, show))[0] == ("off", "0")
            async with reads.planned_each_run(reader):
                assert (await reads.sql_rows(reader, show))[0] == ("off", "0")
    finally:
        await reads.close_shared_reader(info)
        await engine.dispose()

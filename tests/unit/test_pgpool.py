"""app/pgpool.LeanPool, the GET pages' reader's pool on PostgreSQL: its limit, its line of waiting
tasks, and which connections it gives out again."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest

from app.pgpool import LeanPool
from tests.support import BACKEND, POSTGRES_URL

pytestmark = pytest.mark.skipif(BACKEND != "postgresql", reason="LeanPool is PostgreSQL's reader's pool")

PID = "SELECT pg_backend_pid() AS pid"


@asynccontextmanager
async def _pool(size: int = 2, **options: Any) -> AsyncIterator[LeanPool]:
    """A LeanPool on the test server, closed after."""
    options.setdefault("server_settings", {"application_name": "leanpool-test"})
    pool = LeanPool(POSTGRES_URL, max_size=size, **options)
    try:
        yield pool
    finally:
        await pool.close()


async def _pid(pool: LeanPool) -> int:
    return int((await pool.fetch(PID))[0]["pid"])


async def test_connections_are_opened_on_need_reused_and_capped() -> None:
    async with _pool(2) as pool:
        assert pool.size == 0
        first = await _pid(pool)
        assert await _pid(pool) == first and pool.size == 1  # one after another: the same one
        # Three at once with room for two: the third waits for one of theirs, and no third opens.
        sleeps = [pool.fetch("SELECT pg_backend_pid() AS pid, pg_sleep(0.2)") for _ in "abc"]
        pids = [rows[0]["pid"] for rows in await asyncio.gather(*sleeps)]
        assert pool.size == 2 and len(set(pids)) == 2


async def test_the_server_settings_and_init_apply_to_every_connection() -> None:
    seen: list[int] = []

    async def init(connection: asyncpg.Connection) -> None:
        seen.append(connection.get_server_pid())

    async with _pool(2, server_settings={"plan_cache_mode": "force_custom_plan"}, init=init) as pool:
        rows = await asyncio.gather(
            *[pool.fetch("SELECT current_setting('plan_cache_mode') AS m, pg_sleep(0.1)") for _ in "ab"]
        )
        assert [r[0]["m"] for r in rows] == ["force_custom_plan"] * 2 and len(seen) == 2


async def test_a_server_error_keeps_the_connection_a_cancelled_statement_does_not() -> None:
    async with _pool(1) as pool:
        pid = await _pid(pool)
        with pytest.raises(asyncpg.PostgresSyntaxError):
            await pool.fetch("SELEC 1")
        assert await _pid(pool) == pid  # the server answered: the connection is as it was
        slow = asyncio.create_task(pool.fetch("SELECT pg_sleep(5)"))
        await asyncio.sleep(0.2)
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow
        # Its connection was mid-statement: closed, and the next statement gets a new one at once.
        again = await asyncio.wait_for(_pid(pool), 3)
        assert again != pid and pool.size == 1


async def test_a_task_cancelled_in_line_leaves_the_line_and_the_slot_to_others() -> None:
    async with _pool(1) as pool:
        busy = asyncio.create_task(pool.fetch("SELECT pg_sleep(0.3)"))
        await asyncio.sleep(0.05)
        waiting = asyncio.create_task(pool.fetch(PID))
        behind = asyncio.create_task(pool.fetch(PID))
        await asyncio.sleep(0.05)
        waiting.cancel()
        await busy
        assert (await asyncio.wait_for(behind, 3))[0]["pid"] > 0
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert pool.size == 1


async def test_expired_connections_are_replaced_and_a_closed_pool_refuses() -> None:
    async with _pool(2) as pool:
        old = await _pid(pool)
        held = await pool.acquire()  # in use while the pool expires: retired when it comes back
        held_pid = held.get_server_pid()
        await pool.expire_connections()
        pool.release(held)
        assert held.is_closed()
        new = await _pid(pool)
        assert new not in (old, held_pid) and pool.size == 1
    assert pool.size == 0
    with pytest.raises(asyncpg.InterfaceError):
        await pool.fetch(PID)


async def test_a_failed_connect_frees_its_slot() -> None:
    async with _pool(1, server_settings={"no_such_setting_here": "1"}) as pool:
        for _ in "ab":  # each attempt gets the slot back: the second is refused too, not left waiting
            with pytest.raises(asyncpg.PostgresError):
                await asyncio.wait_for(pool.fetch(PID), 5)
        assert pool.size == 0


async def test_connections_the_load_no_longer_needs_are_closed() -> None:
    async with _pool(3, idle_lifetime=0.3) as pool:
        await asyncio.gather(*[pool.fetch("SELECT pg_sleep(0.1)") for _ in "abc"])
        assert pool.size == 3
        await asyncio.sleep(0.5)
        for _ in "abc":  # one at a time now: one connection is enough
            await _pid(pool)
        await asyncio.sleep(0.1)
        assert pool.size == 1

"""app/redisconn.py: the web process's Redis client answers as redis-py's does, across dropped and
dirty connections and silent servers."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis
from redis.asyncio.connection import Connection, UnixDomainSocketConnection

from app.redisconn import TimedSend, _ready, make_redis
from tests.support import REDIS_URL


def test_the_address_still_picks_the_connection_class() -> None:
    tcp = make_redis(REDIS_URL, socket_timeout=2).connection_pool.connection_class
    unix = make_redis("unix:///run/redis/redis.sock").connection_pool.connection_class
    assert issubclass(tcp, TimedSend) and issubclass(tcp, Connection)
    assert issubclass(unix, TimedSend) and issubclass(unix, UnixDomainSocketConnection)


async def test_commands_answer_after_the_server_drops_the_connection() -> None:
    client = make_redis(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    key = f"test:redisconn:{uuid.uuid4().hex}"
    try:
        await client.set(key, b"one", ex=60)
        assert await client.execute_command("GETEX", key, "EX", 60) == b"one"
        (connection,) = client.connection_pool._available_connections  # type: ignore[attr-defined]
        assert _ready(connection)
        my_id = await client.client_id()
        redis.Redis.from_url(REDIS_URL).client_kill_filter(_id=my_id)  # the server closes it
        await asyncio.sleep(0.1)  # the loop sees the close
        assert not _ready(connection)
        assert await client.get(key) == b"one"  # reconnected, not an error
    finally:
        await client.delete(key)
        await client.aclose()


async def test_a_reply_left_unread_never_answers_the_next_command() -> None:
    """A connection handed back with a reply still unread (a command abandoned half-way) is not
    taken as ready: redis-py's own check runs and reconnects, so GET answers GET, not PING."""
    client = make_redis(REDIS_URL, socket_timeout=2)
    key = f"test:redisconn:{uuid.uuid4().hex}"
    try:
        await client.set(key, b"value", ex=60)
        pool = client.connection_pool
        connection = await pool.get_connection("PING")
        await connection.send_command("PING")
        await asyncio.sleep(0.1)  # the reply arrives and waits in the buffers
        assert not _ready(connection)
        await pool.release(connection)
        assert await client.get(key) == b"value"
    finally:
        await client.delete(key)
        await client.aclose()


async def test_a_server_that_stops_answering_is_a_timeout_not_a_hang() -> None:
    """Writes and reads both keep the client's socket timeout (the fault tests pause a real
    Redis; here a listener that accepts and never reads or answers)."""
    accepted: list[asyncio.StreamWriter] = []

    async def silent(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    # No CLIENT SETINFO greeting on connecting, so the first thing written is the command itself.
    options = {"socket_timeout": 0.3, "socket_connect_timeout": 1, "lib_name": None, "lib_version": None}
    client = make_redis(f"redis://127.0.0.1:{port}/0", **options)
    try:
        started = asyncio.get_running_loop().time()
        with pytest.raises(redis.TimeoutError, match="reading"):
            await client.execute_command("GETEX", "k", "EX", 5)
        assert asyncio.get_running_loop().time() - started < 2
        # A write the server never reads fills the socket's buffers: the send itself times out.
        started = asyncio.get_running_loop().time()
        with pytest.raises(redis.TimeoutError, match="writing"):
            await client.set("k", b"x" * (64 << 20))
        assert asyncio.get_running_loop().time() - started < 3
    finally:
        await client.aclose()
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()

"""app/redisconn.py: the web process's Redis client answers as redis-py's does, across dropped and
dirty connections and silent servers."""

from __future__ import annotations

import asyncio
import socket
import uuid

import hiredis
import pytest
import redis
import redis.asyncio
from redis.asyncio.connection import Connection, UnixDomainSocketConnection

from app.redisconn import LeanRedis, TimedSend, _ready, lean_redis, make_redis
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


# ---------------------------------------------------------------- LeanRedis: the session store's connection


def _lean(url: str = REDIS_URL, timeout: float = 2) -> LeanRedis:
    client = lean_redis(url, timeout=timeout, connect_timeout=1)
    assert client is not None
    return client


async def test_lean_commands_answer_as_redis_does() -> None:
    lean, plain = _lean(), make_redis(REDIS_URL)
    key = f"test:lean:{uuid.uuid4().hex}"
    value = "予約 ✓ \x00\xff".encode() + bytes(range(256))
    try:
        assert await lean.execute("GET", key) is None
        assert await lean.execute("SET", key, value, "EX", 60) == b"OK"
        assert await lean.execute("GETEX", key, "EX", 120) == value
        assert await plain.get(key) == value and 60 < await plain.ttl(key) <= 120  # really stored, renewed
        assert await lean.execute("DEL", key) == 1
        assert await plain.exists(key) == 0
    finally:
        await plain.delete(key)
        await plain.aclose()
        lean.close()


async def test_lean_concurrent_commands_each_get_their_own_reply() -> None:
    lean, plain = _lean(), make_redis(REDIS_URL)
    keys = [f"test:lean:{uuid.uuid4().hex}:{n}" for n in range(200)]
    try:
        for n, key in enumerate(keys):
            await plain.set(key, str(n).encode(), ex=60)
        replies = await asyncio.gather(*(lean.execute("GET", key) for key in keys))
        assert replies == [str(n).encode() for n in range(200)]
    finally:
        await plain.delete(*keys)
        await plain.aclose()
        lean.close()


async def test_lean_error_reply_is_a_response_error_and_the_connection_goes_on() -> None:
    lean, plain = _lean(), make_redis(REDIS_URL)
    key = f"test:lean:{uuid.uuid4().hex}"
    try:
        await plain.set(key, b"not a number", ex=60)
        with pytest.raises(redis.ResponseError, match="not an integer"):
            await lean.execute("INCR", key)
        assert await lean.execute("GET", key) == b"not a number"
    finally:
        await plain.delete(key)
        await plain.aclose()
        lean.close()


async def test_lean_reconnects_after_the_server_drops_the_connection() -> None:
    lean = _lean()
    try:
        my_id = await lean.execute("CLIENT", "ID")
        redis.Redis.from_url(REDIS_URL).client_kill_filter(_id=my_id)
        await asyncio.sleep(0.1)  # the loop sees the close
        assert await lean.execute("PING") == b"PONG"
        assert await lean.execute("CLIENT", "ID") != my_id  # a new connection
    finally:
        lean.close()


async def test_lean_selects_the_database_of_the_address() -> None:
    seven = REDIS_URL.rsplit("/", 1)[0] + "/7"
    lean, plain = _lean(seven), redis.asyncio.Redis.from_url(seven)
    key = f"test:lean:{uuid.uuid4().hex}"
    try:
        await lean.execute("SET", key, b"in seven", "EX", 60)
        assert await plain.get(key) == b"in seven"
    finally:
        await plain.delete(key)
        await plain.aclose()
        lean.close()


async def test_lean_a_refused_greeting_fails_the_command_and_is_not_kept() -> None:
    """A password this Redis does not want: AUTH is refused, the command fails, nothing is sent."""
    host = REDIS_URL.split("//", 1)[1]
    lean = _lean(f"redis://:wrong@{host}")
    try:
        for _ in range(2):  # tried again on the next command, refused again
            with pytest.raises(redis.ResponseError):
                await lean.execute("PING")
    finally:
        lean.close()


async def test_lean_refused_address_is_a_connection_error() -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    lean = _lean(f"redis://127.0.0.1:{port}/0")
    with pytest.raises(redis.ConnectionError):
        await lean.execute("GET", "k")
    lean.close()


class _SlowEcho:
    """A server that answers each command with its last argument, `delay` seconds after reading it,
    in order; or never, when delay is None."""

    def __init__(self, delay: float | None) -> None:
        self.delay = delay
        self.connections = 0
        self.writers: list[asyncio.StreamWriter] = []
        self.received: list[list[bytes]] = []  # every command, in the order it arrived

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        parser = hiredis.Reader()
        while data := await reader.read(65536):
            parser.feed(data)
            while (command := parser.gets()) is not False:
                self.received.append(command)
                if self.delay is None:
                    continue
                await asyncio.sleep(self.delay)
                last = command[-1]
                writer.write(b"$%d\r\n%s\r\n" % (len(last), last))


def _close_all(lean: LeanRedis, echo: _SlowEcho, server: asyncio.Server) -> None:
    lean.close()
    for writer in echo.writers:
        writer.close()
    server.close()


async def _serving(handler: _SlowEcho) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handler.serve, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_lean_a_caller_that_gives_up_keeps_its_place() -> None:
    """The first command is cancelled before its reply comes: that reply is dropped, and the second
    command gets its own."""
    echo = _SlowEcho(0.2)
    server, port = await _serving(echo)
    lean = _lean(f"redis://127.0.0.1:{port}/0")
    try:
        first = asyncio.ensure_future(lean.execute("GET", "first"))
        await asyncio.sleep(0.05)
        second = asyncio.ensure_future(lean.execute("GET", "second"))
        await asyncio.sleep(0.05)
        first.cancel()
        assert await second == b"second"
        assert first.cancelled()
        assert await lean.execute("GET", "third") == b"third"
        assert echo.connections == 1
    finally:
        lean.close()
        server.close()


async def test_lean_commands_written_while_connecting_come_after_auth_and_select() -> None:
    """A command that finds the new connection open while its AUTH is still being answered is
    written after SELECT too, so it runs in the address's database."""
    echo = _SlowEcho(0.1)
    server, port = await _serving(echo)
    lean = _lean(f"redis://:secret@127.0.0.1:{port}/7")
    try:
        first = asyncio.ensure_future(lean.execute("GET", "first"))
        await asyncio.sleep(0.05)  # connected; AUTH not answered yet
        second = asyncio.ensure_future(lean.execute("GET", "second"))
        assert await asyncio.gather(first, second) == [b"first", b"second"]
        assert echo.received[:2] == [[b"AUTH", b"secret"], [b"SELECT", b"7"]]
        assert sorted(echo.received[2:]) == [[b"GET", b"first"], [b"GET", b"second"]]
    finally:
        lean.close()
        server.close()


async def test_lean_a_silent_server_is_a_timeout_then_a_new_connection() -> None:
    echo = _SlowEcho(None)
    server, port = await _serving(echo)
    lean = _lean(f"redis://127.0.0.1:{port}/0", timeout=0.3)
    try:
        started = asyncio.get_running_loop().time()
        waiting = [asyncio.ensure_future(lean.execute("GET", str(n))) for n in range(3)]
        results = await asyncio.gather(*waiting, return_exceptions=True)
        assert all(isinstance(r, redis.TimeoutError) for r in results), results
        assert asyncio.get_running_loop().time() - started < 1.5
        echo.delay = 0  # the server answers again: the next command opens a new connection
        assert await lean.execute("GET", "back") == b"back"
        assert echo.connections == 2
    finally:
        _close_all(lean, echo, server)


def test_lean_is_not_used_for_tls_addresses() -> None:
    assert lean_redis("rediss://127.0.0.1:6380/0", timeout=1, connect_timeout=1) is None
    assert lean_redis("unix:///run/redis/redis.sock", timeout=1, connect_timeout=1) is not None


async def test_lean_commands_of_one_turn_go_out_in_one_write() -> None:
    """Commands made in the same turn of the event loop share one write, and each still gets its
    own reply, in order."""
    lean, plain = _lean(), make_redis(REDIS_URL)
    keys = [f"test:lean:{uuid.uuid4().hex}:{n}" for n in range(20)]
    try:
        for n, key in enumerate(keys):
            await plain.set(key, str(n).encode(), ex=60)
        assert await lean.execute("PING") == b"PONG"  # connected
        transport = lean._transport
        assert transport is not None
        writes: list[bytes] = []
        write = transport.write

        def counted(data: bytes) -> None:
            writes.append(data)
            write(data)

        transport.write = counted  # type: ignore[method-assign]
        replies = await asyncio.gather(*(lean.execute("GET", key) for key in keys))
        assert replies == [str(n).encode() for n in range(20)]
        assert len(writes) == 1 and writes[0].count(b"GET") == 20
        assert await lean.execute("GET", keys[3]) == b"3" and len(writes) == 2  # alone: its own write
    finally:
        await plain.delete(*keys)
        await plain.aclose()
        lean.close()


async def test_lean_a_connection_found_closing_fails_its_own_commands_only() -> None:
    """A command finds the connection closing before its loss is reported: the command still
    waiting on it fails, and the next command, on a new connection, gets its own reply."""
    echo = _SlowEcho(0.2)
    server, port = await _serving(echo)
    lean = _lean(f"redis://127.0.0.1:{port}/0")
    try:
        assert await lean.execute("GET", "open") == b"open"
        waiting = asyncio.ensure_future(lean.execute("GET", "slow"))
        await asyncio.sleep(0.05)  # written, its reply not yet come
        assert lean._transport is not None
        lean._transport.close()  # closing; connection_lost comes later
        assert await lean.execute("GET", "next") == b"next"
        with pytest.raises(redis.ConnectionError):
            await waiting
        assert echo.connections == 2
    finally:
        _close_all(lean, echo, server)


async def test_lean_each_command_has_its_own_deadline() -> None:
    """One timer watches the oldest command: replies that come in time answer their commands, and
    the first command whose reply is late fails with every command still waiting behind it."""
    echo = _SlowEcho(0.2)  # answers one command every 0.2 s, in order
    server, port = await _serving(echo)
    lean = _lean(f"redis://127.0.0.1:{port}/0", timeout=0.5)
    try:
        assert await lean.execute("GET", "warm") == b"warm"  # connected
        waiting = [asyncio.ensure_future(lean.execute("GET", str(n))) for n in range(5)]
        results = await asyncio.gather(*waiting, return_exceptions=True)
        assert results[:2] == [b"0", b"1"], results  # 0.2 and 0.4 s: within 0.5 s
        assert all(isinstance(r, redis.TimeoutError) for r in results[2:]), results  # 0.6 s and later
        assert lean._watchdog is None and not lean._waiting  # nothing left to watch
        echo.delay = 0
        assert await lean.execute("GET", "again") == b"again"  # a new connection
    finally:
        _close_all(lean, echo, server)

"""The web process's Redis client: redis-py's, with two of its per-command costs made cheaper.

Every page reads its session from Redis, so redis-py's client-side cost is part of every page: a
GETEX took ~40 µs of CPU, most of it around the command rather than in it (bench/inprocess.py,
py-spy). Two parts are replaced, keeping their behaviour:

- Sending: with a socket timeout set, redis-py writes through `asyncio.wait_for`, which wraps the
  write in a new Task for every command (~8 % of a patron's smallest request). Here the same write
  runs under `asyncio.timeout`, with the same errors and the same disconnect on failure.
- Taking a connection from the pool: before each command, redis-py's pool polls the socket for
  unread data (a read with a zero timeout: a trip round the event loop, a cancelled future and a
  TimeoutError raised and caught), in case a command before it was abandoned half-way. redis-py
  already drops a connection whose command fails or is cancelled mid-way (read_response
  disconnects on any exception), so unread data is not expected; what is worth checking is done
  without leaving the loop: bytes already buffered by the stream or the reply parser, or a
  connection the server has closed (Redis restarted). Anything else, and any connection not in
  that plain state, goes through redis-py's own check as before.

Measured (8 concurrent clients, GETEX, CPU µs per command, median of 20 rounds): 43 → 32.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from typing import Any

import hiredis
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.connection import AbstractConnection, parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError


class TimedSend:
    """Mixed into the pool's connection class: `send_packed_command` without a Task per write."""

    async def send_packed_command(
        self, command: bytes | str | Iterable[bytes], check_health: bool = True
    ) -> None:
        connection: Any = self
        if not connection.socket_timeout:
            await super().send_packed_command(command, check_health)  # type: ignore[misc]
            return
        if not connection.is_connected:
            await connection.connect()
        elif check_health:
            await connection.check_health()
        if isinstance(command, str):
            command = command.encode()
        if isinstance(command, bytes):
            command = [command]
        try:
            async with asyncio.timeout(connection.socket_timeout):
                await connection._send_packed_command(command)
        except TimeoutError:
            await connection.disconnect(nowait=True)
            raise RedisTimeoutError("Timeout writing to socket") from None
        except OSError as e:
            await connection.disconnect(nowait=True)
            raise RedisConnectionError(f"Error while writing to socket. {e.args}.") from e
        except BaseException:
            await connection.disconnect(nowait=True)
            raise


class CheckedPool(ConnectionPool):
    async def ensure_connection(self, connection: AbstractConnection) -> None:
        if _ready(connection):
            return
        await super().ensure_connection(connection)


def _ready(connection: AbstractConnection) -> bool:
    """Connected, the server has not closed it, and nothing is waiting to be read."""
    stream: Any = getattr(connection, "_reader", None)
    if stream is None or getattr(connection, "_writer", None) is None:
        return False
    buffered = getattr(stream, "_buffer", None)
    if buffered is None or buffered or stream.at_eof() or stream.exception() is not None:
        return False
    replies: Any = getattr(getattr(connection, "_parser", None), "_reader", None)
    has_data = getattr(replies, "has_data", None)
    return has_data is not None and not has_data()


def make_redis(url: str, **options: Any) -> Redis:
    """Like `Redis.from_url` (the address picks the connection class: TCP, TLS or a Unix socket);
    closing the client closes its pool."""
    pool = CheckedPool.from_url(url, **options)
    base = pool.connection_class
    pool.connection_class = type(f"Timed{base.__name__}", (TimedSend, base), {})
    return Redis.from_pool(pool)


class LeanRedis:
    """A pipelined Redis connection for the session store's three commands (GETEX, SET, DEL).

    Why: every patron page reads its session, and an action writes it back. Through redis-py a
    command cost ~112 k instructions of CPU (bench/instructions.py's way of counting: callgrind,
    2 000 GETEX), most of it in its layers (retry, pool, stream reader, reply parser wrapper); the
    same command written and read here costs ~23 k. It is ~4 % of the Loans page and ~15 % of the
    cart-add fragment, which reads and writes its session.

    What it keeps of redis-py: its address parsing (`redis://`, `unix://`, user, password, db),
    its reply parser (hiredis), its exceptions (ConnectionError, TimeoutError, ResponseError, all
    RedisError, which the session middleware turns into a guest page or a 503), its timeouts.

    How: one connection per process, opened on first use (one opening shared by every waiting
    command), commands written as they come and matched to replies in order (Redis answers in
    order). A command whose caller gave up (cancelled) keeps its place, so its reply is read and
    dropped and never answers the next one. A reply that does not come within the timeout, or a
    connection the server closes, fails every command waiting on it; the next command reconnects.
    TLS addresses (`rediss://`) are not handled here: `lean_redis` answers None and the store uses
    redis-py for everything.
    """

    def __init__(self, url: str, *, timeout: float, connect_timeout: float) -> None:
        options = parse_url(url)
        self._path: str | None = options.get("path")
        self._host: str = options.get("host", "localhost")
        self._port: int = int(options.get("port", 6379))
        self._greeting: list[tuple[Any, ...]] = []
        if options.get("password") is not None:
            user, password = options.get("username"), options["password"]
            self._greeting.append(("AUTH", user, password) if user else ("AUTH", password))
        if int(options.get("db", 0) or 0):
            self._greeting.append(("SELECT", int(options["db"])))
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._transport: asyncio.Transport | None = None
        # Each command written or queued and not yet answered, oldest first, with the loop time its
        # reply is due by; the one timer that watches the oldest (see _watch).
        self._waiting: deque[tuple[asyncio.Future[Any], float]] = deque()
        self._watchdog: asyncio.TimerHandle | None = None
        self._opening: asyncio.Future[None] | None = None
        # Commands packed but not yet written (see _send). They are always for the current
        # connection: losing it (_lost) drops them.
        self._unsent: list[bytes] = []

    async def execute(self, *args: Any) -> Any:
        transport = self._transport
        if transport is None or transport.is_closing():
            if transport is not None:  # closing, its loss not yet reported: its commands fail now,
                self._lost(RedisConnectionError("Connection closed by server."))  # not the next ones
            await self._open()
        return await self._reply(self._send(args))

    def _send(self, args: tuple[Any, ...]) -> asyncio.Future[Any]:
        """Queue a command; the commands of one turn of the event loop go out in one write.

        Why: a write to a TCP socket is a system call that runs the kernel's network stack in this
        process (on loopback, Redis's side of it too): ~5 % of the dashboard's time (py-spy). Under
        load many requests reach their session read in the same turn of the loop; their commands
        now share one write, made as the loop's next callback (strace under wrk, 32 connections:
        3.0 -> 2.1 writes a dashboard request, the rest being the response). Replies still come
        back in the order the commands were queued, which is the order of `_waiting`.
        """
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[Any] = loop.create_future()
        self._waiting.append((reply, loop.time() + self._timeout))
        if self._watchdog is None:
            self._watchdog = loop.call_at(self._waiting[0][1], self._watch)
        if not self._unsent:
            loop.call_soon(self._flush)
        self._unsent.append(hiredis.pack_command(args))
        return reply

    def _flush(self) -> None:
        unsent, self._unsent = self._unsent, []
        transport = self._transport
        # Nothing left (the connection was lost before this turn came: _lost dropped them and
        # failed their commands), or a connection closing: nothing is written.
        if unsent and transport is not None and not transport.is_closing():
            transport.write(unsent[0] if len(unsent) == 1 else b"".join(unsent))

    def _watch(self) -> None:
        """The timeout of every command, with one timer for the connection instead of one per
        command (`asyncio.timeout` made, rescheduled and cancelled a timer for every session read:
        ~1 % of a page). The timer waits for the oldest command's deadline; if its reply has not
        come by then, the connection is lost and every waiting command fails with a timeout, as
        redis-py's socket timeout does; otherwise it waits for the next oldest."""
        self._watchdog = None
        if not self._waiting:
            return
        loop = asyncio.get_running_loop()
        oldest = self._waiting[0][1]
        if loop.time() >= oldest:
            self._lost(RedisTimeoutError("Timeout reading from socket"))
        else:
            self._watchdog = loop.call_at(oldest, self._watch)

    async def _reply(self, reply: asyncio.Future[Any]) -> Any:
        answer = await reply  # a timeout or a lost connection fails it (_watch, _lost)
        if isinstance(answer, ResponseError):
            raise answer
        return answer

    async def _open(self) -> None:
        if self._opening is None:
            self._opening = asyncio.get_running_loop().create_future()
            opening = self._opening
            try:
                await self._connect()
            except BaseException as exc:
                opening.set_exception(exc)
                opening.exception()  # retrieved: only the callers waiting on it need to see it
                raise
            else:
                opening.set_result(None)
            finally:
                self._opening = None
        else:
            await asyncio.shield(self._opening)
        if self._transport is None:  # opened and lost at once
            raise RedisConnectionError("Connection closed by server.")

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        replies = lambda: _Replies(self)  # noqa: E731
        try:
            async with asyncio.timeout(self._connect_timeout):
                if self._path:
                    transport, _ = await loop.create_unix_connection(replies, self._path)
                else:
                    transport, _ = await loop.create_connection(replies, self._host, self._port)
        except TimeoutError:
            raise RedisTimeoutError("Timeout connecting to server") from None
        except OSError as exc:
            where = self._path or f"{self._host}:{self._port}"
            raise RedisConnectionError(f"Error connecting to {where}. {exc}") from exc
        self._transport = transport  # type: ignore[assignment]
        # AUTH and SELECT are all written before this first await, so any command another caller
        # writes on this connection comes after them, and Redis runs them in that order.
        answers = [self._send(command) for command in self._greeting]
        try:
            for answer in answers:
                await self._reply(answer)
        except BaseException:
            self._lost(RedisConnectionError("Greeting refused"))
            raise

    def _received(self, reply: Any) -> None:
        if self._waiting:  # the oldest command's reply; a caller that gave up still had its place
            waiter, _ = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(reply)

    def _lost(self, error: Exception) -> None:
        transport, self._transport = self._transport, None
        self._unsent = []
        if transport is not None:
            transport.abort()
        waiting, self._waiting = self._waiting, deque()
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        for waiter, _ in waiting:
            if not waiter.done():
                waiter.set_exception(error)

    def close(self) -> None:
        self._lost(RedisConnectionError("Client closed"))


class _Replies(asyncio.Protocol):
    def __init__(self, owner: LeanRedis) -> None:
        self._owner = owner
        self._parser = hiredis.Reader(protocolError=InvalidResponse, replyError=ResponseError)
        self._transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._parser.feed(data)
        try:
            while (reply := self._parser.gets()) is not False:
                self._owner._received(reply)
        except InvalidResponse as exc:
            self._owner._lost(RedisConnectionError(f"Protocol error: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        if self._owner._transport is self._transport:
            self._owner._lost(RedisConnectionError("Connection closed by server."))


def lean_redis(url: str, *, timeout: float, connect_timeout: float) -> LeanRedis | None:
    """The session store's connection for this address, or None where redis-py must do (TLS)."""
    if url.startswith("rediss://"):
        return None
    return LeanRedis(url, timeout=timeout, connect_timeout=connect_timeout)

"""A pool of asyncpg connections for the GET pages' reader (app/reads.PgReader): a connection is
taken and given back without a task or a round trip.

Why: asyncpg's own pool gives a connection back through `asyncio.shield(...)`, a task of its own
scheduled on the loop for every statement, and its reset runs as a coroutine under a timeout even
when it does nothing. Measured here (uvloop, `SELECT 1` one after another): 113–134 µs of CPU a
statement on a connection held, 206–230 µs through `Pool.fetch`; py-spy put a quarter of the
search's client time in `Pool.release`. The reader runs each statement on its own in autocommit,
so a connection carries nothing from one statement to the next and needs no reset: here it goes
back to a list, or straight to a task waiting for one.

What is kept from asyncpg's pool: at most `max_size` connections, opened on first need with the
given server settings and `init`; a task waits in line when all are busy; `expire_connections()`
retires every connection (a server that dropped one has dropped them all: PgReader calls it and
runs the statement again); a connection that saw anything but an answer from the server (a lost
connection, a cancelled task mid-statement) is closed, not given to the next; a connection idle
for five minutes is closed as the load falls. A server that ends a connection (an idle timeout)
is handled as a lost connection.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any


class LeanPool:
    __slots__ = (
        "_closers",
        "_closing",
        "_dsn",
        "_generation",
        "_idle",
        "_idle_lifetime",
        "_init",
        "_max",
        "_open",
        "_opening",
        "_settings",
        "_waiters",
    )

    def __init__(
        self,
        dsn: str,
        *,
        max_size: int,
        server_settings: dict[str, str],
        init: Callable[[Any], Awaitable[None]] | None = None,
        idle_lifetime: float = 300.0,
    ) -> None:
        self._dsn = dsn
        self._max = max_size
        self._settings = server_settings
        self._init = init
        # Idle connections with when each came back, the most recent last (taken first).
        self._idle: list[tuple[Any, float]] = []
        self._idle_lifetime = idle_lifetime
        self._closers: set[asyncio.Task[None]] = set()
        # Connections open, in use or idle, and the generation each was opened in.
        self._open: dict[Any, int] = {}
        self._generation = 0
        # Tasks waiting in line: each future gets a connection, or None for "open one yourself".
        self._waiters: deque[asyncio.Future[Any]] = deque()
        self._opening = 0  # connections being opened: they count against max_size too
        self._closing = False

    @property
    def size(self) -> int:
        """Connections open now (in use or idle)."""
        return len(self._open)

    async def acquire(self) -> Any:
        if self._closing:
            import asyncpg

            raise asyncpg.InterfaceError("the pool is closing")
        idle = self._idle
        while idle:
            connection = idle.pop()[0]
            if not connection.is_closed():
                return connection
            self._open.pop(connection, None)
        if len(self._open) + self._opening >= self._max:
            waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                connection = await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():  # given one just as it was cancelled
                    self._hand_on(waiter.result())
                else:
                    self._waiters.remove(waiter)
                raise
            if connection is not None:
                return connection
            # A slot was freed for this task: it opens its own connection (below).
        return await self._connect()

    async def _connect(self) -> Any:
        import asyncpg

        self._opening += 1
        try:
            connection = await asyncpg.connect(self._dsn, server_settings=self._settings)
            try:
                if self._init is not None:
                    await self._init(connection)
            except BaseException:
                connection.terminate()
                raise
        except BaseException:
            self._opening -= 1
            self._hand_on(None)  # the slot is free again: perhaps for a task in line
            raise
        self._opening -= 1
        self._open[connection] = self._generation
        return connection

    def release(self, connection: Any, *, reusable: bool = True) -> None:
        """Give a connection back: to the first task in line, or to the idle list. One that is not
        `reusable` (it saw something other than the server's answer), closed, or of an older
        generation is closed and forgotten, and its slot handed on."""
        generation = self._open.get(connection)
        if not reusable or self._closing or generation != self._generation or connection.is_closed():
            self._open.pop(connection, None)
            if not connection.is_closed():
                connection.terminate()
            self._hand_on(None)
            return
        self._hand_on(connection)

    def _hand_on(self, connection: Any) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        if connection is None:
            return
        idle = self._idle
        now = time.monotonic()
        idle.append((connection, now))
        # As the load falls, the connections it no longer needs sit at the bottom unused: one idle
        # for longer than idle_lifetime is closed (as asyncpg's pool does), one each time a
        # connection comes back. A process that serves nothing at all keeps what it has.
        oldest, since = idle[0]
        if len(idle) > 1 and now - since > self._idle_lifetime:
            del idle[0]
            self._open.pop(oldest, None)
            closer = asyncio.get_running_loop().create_task(self._close_quietly(oldest))
            self._closers.add(closer)
            closer.add_done_callback(self._closers.discard)

    @staticmethod
    async def _close_quietly(connection: Any) -> None:
        try:
            await asyncio.wait_for(connection.close(), 5)
        except Exception:  # a connection the server already ended, or too slow to say goodbye
            connection.terminate()

    async def fetch(self, sql: str, *values: Any) -> list[Any]:
        """One statement on a connection of the pool: its rows."""
        import asyncpg

        connection = await self.acquire()
        try:
            rows = await connection.fetch(sql, *values)
        except asyncpg.PostgresError as error:  # the server's answer: the connection is as it was
            self.release(connection, reusable=not isinstance(error, asyncpg.PostgresConnectionError))
            raise
        except BaseException:
            self.release(connection, reusable=False)
            raise
        self.release(connection)
        return rows  # type: ignore[no-any-return]

    async def expire_connections(self) -> None:
        """Retire every connection: the idle ones now, those in use when they come back."""
        self._generation += 1
        idle, self._idle = self._idle, []
        for connection, _ in idle:
            self._open.pop(connection, None)
            connection.terminate()
            self._hand_on(None)

    async def close(self) -> None:
        self._closing = True
        idle, self._idle = self._idle, []
        for connection, _ in idle:
            self._open.pop(connection, None)
            await self._close_quietly(connection)
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                import asyncpg

                waiter.set_exception(asyncpg.InterfaceError("the pool is closing"))

"""Server-side sessions in Redis, with a new session id at log-in (no session fixation)."""

from __future__ import annotations

from datetime import timedelta
from functools import cached_property
from typing import Any, cast

from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie, MutableScopeHeaders
from litestar.middleware.session.server_side import ServerSideSessionBackend, ServerSideSessionConfig
from litestar.stores.redis import RedisStore
from litestar.types import Empty, Message, ScopeSession
from litestar.utils.dataclass import extract_dataclass_items
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.redisconn import LeanRedis

ROTATE_KEY = "_rotate"
RAW_KEY = "_session_raw"
UNAVAILABLE_KEY = "_session_unavailable"
SAFE_METHODS = frozenset({"GET", "HEAD"})


class RotatingSessionBackend(ServerSideSessionBackend):
    """Stores sessions like Litestar's backend, but rotates the id on request and skips empty ones."""

    async def store_in_message(
        self, scope_session: ScopeSession, message: Message, connection: ASGIConnection
    ) -> None:
        if connection.scope.get(UNAVAILABLE_KEY):
            return  # the store is away: leave the browser's cookie and the stored session alone
        old_id = connection.cookies.get(self.config.key)
        if old_id == "null":
            old_id = None
        emptied = scope_session is Empty or not scope_session
        if emptied and not old_id:
            return  # a guest with nothing to keep and no cookie to clear
        if not emptied:
            rotate = bool(scope_session.pop(ROTATE_KEY, False))  # type: ignore[union-attr]
            data = self.serialize_data(scope_session, connection.scope)
            if not rotate and old_id and data == connection.scope.get(RAW_KEY):  # type: ignore[comparison-overlap]
                # Unchanged (most pages): loading it already renewed its expiry, so one Redis round
                # trip is saved, and there is no cookie to write.
                return

        store = self.config.get_store_from_app(connection.scope["app"])
        headers = MutableScopeHeaders.from_message(message)
        if emptied:
            # Logged out: nothing stays on the server.
            await self.delete(old_id, store=store)  # type: ignore[arg-type]
            cleared = Cookie(value="null", key=self.config.key, expires=0, **self._cookie_params)
            headers.add("Set-Cookie", cleared.to_header(header=""))
            return

        session_id = old_id
        if rotate or not session_id:
            if session_id:
                await self.delete(session_id, store=store)
            session_id = self.generate_session_id()
        await self.set(session_id=session_id, data=data, store=store)
        cookie = Cookie(value=session_id, key=self.config.key, **self._cookie_params)
        headers.add("Set-Cookie", cookie.to_header(header=""))

    @cached_property
    def _cookie_params(self) -> dict[str, Any]:
        params = dict(extract_dataclass_items(self.config, exclude_none=True, include=Cookie.__dict__.keys()))
        # A browser-session cookie: the server's store alone decides when inactivity ends the session.
        params.pop("max_age", None)
        return params

    async def load_from_connection(self, connection: ASGIConnection) -> dict[str, Any]:
        session_id = connection.cookies.get(self.config.key)
        if session_id and session_id != "null":
            store = self.config.get_store_from_app(connection.scope["app"])
            try:
                data = await self.get(session_id, store=store)
            except RedisError:
                if connection.scope.get("method") not in SAFE_METHODS:
                    raise  # an action: answered 503 "try again shortly", nothing changed
                # A page: shown as to a guest (public pages still work); pages that need the
                # patron answer 503 (app/routes/_deps.py); nothing is written back.
                connection.scope[UNAVAILABLE_KEY] = True  # type: ignore[literal-required]
                return {}
            if data is not None:
                connection.scope[RAW_KEY] = data  # type: ignore[literal-required]
                return self.deserialize_data(data)
        return {}


class SessionStore(RedisStore):
    """Litestar's Redis store, reading and renewing a session with one GETEX instead of a Lua script,
    and sending its reads, writes and deletes over a lean connection (app/redisconn.py's LeanRedis)
    where one is given.

    Every page loads its session and pushes its expiry forward (sliding inactivity timeout). The
    store's script does GET, TTL and EXPIRE inside Redis and goes through redis-py's script wrapper;
    GETEX (Redis 6.2+) is one native command. Sessions are always stored with an expiry, so the
    script's "renew only what has one" check changes nothing here. Everything else (deleting all,
    expiry queries) stays with redis-py.
    """

    def __init__(self, redis: Redis, *, lean: LeanRedis | None = None, **options: Any) -> None:
        super().__init__(redis, **options)
        # A command and its arguments, answered as Redis answers it, by whichever connection carries them.
        self._command = lean.execute if lean is not None else redis.execute_command

    async def get(self, key: str, renew_for: int | timedelta | None = None) -> bytes | None:
        if not renew_for:
            return cast("bytes | None", await self._command("GET", self._make_key(key)))
        seconds = int(renew_for.total_seconds()) if isinstance(renew_for, timedelta) else renew_for
        # The command itself: redis-py's getex() first checks its five exclusive options in Python.
        return cast("bytes | None", await self._command("GETEX", self._make_key(key), "EX", seconds))

    async def set(self, key: str, value: str | bytes, expires_in: int | timedelta | None = None) -> None:
        if isinstance(value, str):
            value = value.encode("utf-8")
        if isinstance(expires_in, timedelta):
            expires_in = int(expires_in.total_seconds())
        expiry = ("EX", expires_in) if expires_in else ()
        await self._command("SET", self._make_key(key), value, *expiry)

    async def delete(self, key: str) -> None:
        await self._command("DEL", self._make_key(key))


class RotatingSessionConfig(ServerSideSessionConfig):
    _backend_class = RotatingSessionBackend

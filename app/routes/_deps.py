"""Dependencies every route module shares: the database session, the patron, the policy."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import MappingProxyType
from typing import Annotated, Any, cast

from litestar import Request
from litestar.datastructures import State
from litestar.exceptions import ServiceUnavailableException
from litestar.params import PathParameter, QueryParameter
from litestar.utils.compat import async_next
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.policy import Policy
from app.routes._render import session_patron
from app.services.accounts import SessionPatron
from app.sessions import UNAVAILABLE_KEY


class LoginRequired(Exception):
    """The page needs a logged-in patron; the handler sends the browser to log in."""


class PasswordChangeRequired(Exception):
    """The patron holds a temporary password and may only change it."""


SAFE_METHODS = frozenset({"GET", "HEAD"})


class PageSession:
    """What a GET page on SQLite gets as `db`: the real AsyncSession is made on first use.

    Why: most pages read only through `Read`s and `sql_rows` on the shared reader
    (app/reads.py), which need nothing of a session but its `info`; building an AsyncSession and
    its Session for every request cost ~3 % of the Loans page (bench/pages.py, profiled with
    py-spy). Anything else a page asks of `db` (an ORM query, `get_bind()`) makes the session then.
    """

    __slots__ = ("_maker", "_session", "info")

    def __init__(self, maker: async_sessionmaker[AsyncSession], info: dict[str, Any]) -> None:
        self._maker = maker
        self._session: AsyncSession | None = None
        # The shared reader, as every session of this maker holds it; read-only here, because this
        # one dict serves every request.
        self.info = MappingProxyType(info)

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        # Litestar checks a dependency's type against the handler's annotation (isinstance, which
        # asks __class__): to handlers this is an AsyncSession, as unittest.mock's spec does it.
        return AsyncSession

    def __getattr__(self, name: str) -> Any:
        if self._session is None:
            self._session = self._maker()
        return getattr(self._session, name)

    async def close_if_used(self) -> None:
        if self._session is not None:
            await _close(self._session)


async def _close(session: AsyncSession) -> None:
    # A page that only ran `Read`s on the shared reader never opened a transaction: there is
    # nothing to close, and AsyncSession.close() would still cost a greenlet round trip.
    if session.sync_session.get_transaction() is not None or session.sync_session.identity_map:
        await session.close()


async def provide_db(request: Request, state: State) -> AsyncIterator[AsyncSession]:
    """GET pages never change state, so on SQLite they read inline (app/sqlite_inline.py).

    A POST that writes only to the session (the cart) says so with opt={"db_reads_only": True}.
    """
    reads_only = request.method in SAFE_METHODS or request.route_handler.opt.get("db_reads_only", False)
    if reads_only and state.read_info:
        page = PageSession(state.read_sessionmaker, state.read_info)
        try:
            yield cast(AsyncSession, page)
        finally:
            await page.close_if_used()
        return
    session = (state.read_sessionmaker if reads_only else state.sessionmaker)()
    try:
        yield session
    finally:
        await _close(session)


def provide_patron(request: Request) -> SessionPatron:
    patron = session_patron(request)
    if patron is None:
        if request.scope.get(UNAVAILABLE_KEY):
            raise ServiceUnavailableException()  # the session store is away: not logged out
        raise LoginRequired()
    # Fukuoka, Kitakyushu, Fukushima: a temporary password must be changed before anything else.
    if patron.password_state == "temporary" and not request.route_handler.opt.get("temporary_ok"):
        raise PasswordChangeRequired()
    return patron


def provide_policy(state: State) -> Policy:
    return state.policy


# A database id in a URL: a positive 32-bit integer, so no input can overflow a column (400 otherwise).
RecordId = Annotated[int, PathParameter(ge=1, le=2_147_483_647)]
PageNumber = Annotated[int, QueryParameter(ge=1, le=10_000)]


def resolve_dependencies_in_order() -> None:
    """Make Litestar resolve a handler's dependencies one after another instead of in a task group.

    Why: Litestar starts an anyio task group for every batch of two or more dependencies of the same
    depth, so that slow ones can run in parallel. Ours (the database session, the patron, the policy,
    the staff user) take microseconds and never wait on each other; the task group alone cost ~10 %
    of a page's time (bench/pages.py, profiled with py-spy). In order, plain ones first, a refusal
    such as LoginRequired is raised before a database session is opened; and if a dependency fails
    after one was opened, the opened ones are closed at once.
    """
    from litestar._kwargs.cleanup import DependencyCleanupGroup
    from litestar._kwargs.dependencies import resolve_dependency
    from litestar._kwargs.kwargs_model import KwargsModel

    if getattr(KwargsModel.resolve_dependencies, "in_order", False):
        return

    async def resolve_dependencies(
        self: KwargsModel, connection: Request, kwargs: dict[str, object]
    ) -> DependencyCleanupGroup:
        cleanup_group = DependencyCleanupGroup()
        order = _ORDER.get(self)
        if order is None:  # worked out once per handler: batches in turn, plain ones first
            order = _ORDER[self] = [
                (dependency, _framework_only(dependency.provide))
                for batch in self.dependency_batches
                for dependency in sorted(batch, key=_generators_last)
            ]
        try:
            for dependency, names in order:
                if names is None:
                    await resolve_dependency(dependency, connection, kwargs, cleanup_group)
                else:
                    await _resolve_directly(dependency, names, connection, kwargs, cleanup_group)
        except BaseException as error:
            await cleanup_group.close(error)
            raise
        return cleanup_group

    resolve_dependencies.in_order = True  # type: ignore[attr-defined]
    KwargsModel.resolve_dependencies = resolve_dependencies  # type: ignore[assignment,method-assign]
    _pass_resolved_values_through()


def _pass_resolved_values_through() -> None:
    """A handler (or dependency) whose parameters are all the request, the app's state and other
    dependencies gets the values as they are, without its signature model.

    Why: Litestar builds a msgspec Struct of a handler's parameters at every request and converts
    each value into it (`parse_values_from_connection_kwargs`): for `mylibrary(request, patron, db,
    policy)` that checked four objects the framework and our own providers had just made, ~1 % of
    the dashboard. None of them comes from the client. A handler with any parameter taken from the
    request (a path or query parameter, headers, a body) goes through the model as before, so every
    client value is still parsed and validated.
    """
    from litestar._signature.model import SignatureModel

    parse = SignatureModel.parse_values_from_connection_kwargs
    if getattr(parse, "passes_through", False):
        return
    convert = parse.__func__  # type: ignore[attr-defined]

    def parse_values(cls: Any, connection: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        names = _PASS_THROUGH.get(cls)
        if names is None:
            names = _PASS_THROUGH[cls] = _resolved_only(cls)
        if names:
            # `state` arrives as the app state's dict; the model wrapped it in a State, which
            # shares that dict, so handing over the app's State itself is the same thing.
            return {name: connection.app.state if name == "state" else kwargs[name] for name in names}
        return convert(cls, connection, kwargs)  # type: ignore[no-any-return]

    parse_values.passes_through = True  # type: ignore[attr-defined]
    SignatureModel.parse_values_from_connection_kwargs = classmethod(parse_values)  # type: ignore[assignment,method-assign]


# Per signature model: the names of its parameters when all of them are resolved values, else ().
_PASS_THROUGH: dict[Any, tuple[str, ...]] = {}


def _resolved_only(model: Any) -> tuple[str, ...]:
    fields = model._fields
    if model._headers_from_connection or not fields:
        return ()
    names = tuple(fields)
    resolved = _FRAMEWORK_NAMES | set(model._dependency_name_set)
    if not set(names) <= resolved or any(fields[name].has_default for name in names):
        return ()
    return names


# Per handler's KwargsModel (kept alive here): its dependencies in the order they are resolved.
_ORDER: dict[Any, list[tuple[Any, tuple[str, ...] | None]]] = {}
_FRAMEWORK_NAMES = frozenset({"request", "state"})


def _framework_only(provide: Any) -> tuple[str, ...] | None:
    """Why: Litestar gives a dependency its parameters through its signature model, which for
    `request` and `state` validates framework objects against their annotations (msgspec
    `convert`) and builds a new `State` from the app's for every such dependency. Passed as they
    are (with the order worked out once per handler), the dashboard costs 4 % fewer instructions
    a request (callgrind: 2.05 -> 1.96 M), cart-add 6 % fewer. Those values are the framework's own,
    never the client's; a dependency with any other parameter still goes through the model."""
    names = tuple(provide.signature_model._fields)
    return names if set(names) <= _FRAMEWORK_NAMES else None


async def _resolve_directly(
    dependency: Any,
    names: tuple[str, ...],
    connection: Request,
    kwargs: dict[str, object],
    cleanup_group: Any,
) -> None:
    """litestar._kwargs.dependencies.resolve_dependency, with `request` and `state` given as they are."""
    provide = dependency.provide
    value = await provide(
        **{name: connection if name == "request" else connection.app.state for name in names}
    )
    if provide.has_sync_generator_dependency:
        cleanup_group.add(value)
        value = next(value)
    elif provide.has_async_generator_dependency:
        cleanup_group.add(value)
        value = await async_next(value)
    kwargs[dependency.key] = value


def _generators_last(dependency: object) -> bool:
    provide = dependency.provide  # type: ignore[attr-defined]
    return bool(provide.has_sync_generator_dependency or provide.has_async_generator_dependency)

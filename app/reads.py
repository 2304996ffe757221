"""Hot read statements, compiled once per database and run on the driver connection.

Why (docs/performance-notes.md, bench/pages.py): a page's SELECT costs SQLite ~20 µs, but going
through `AsyncSession.execute` adds ~220 µs of SQLAlchemy work per statement (cache-key
generation, execution context, ORM result set-up, greenlet hops) and made every page several
times slower than its template. A `Read` keeps SQLAlchemy for what it is good at, building the
statement and compiling it for each dialect, and does the per-request part itself:

- the statement is built and compiled once per dialect (SQL text, parameter order, constants);
- values are converted with the dialect's own bind/result processors (dates on SQLite);
- it runs on the session's driver connection (sqlite3, aiosqlite or asyncpg), inside the
  session's transaction, so it sees what the session has written;
- rows come back as named tuples with the statement's column names (`row.title`).

Only plain parameters are supported (no lists for `IN`: constant lists in the statement are fine).
Writes stay with the ORM, where the unit of work and its checks matter more than microseconds.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections import namedtuple
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, cast

from sqlalchemy import Select, Text, bindparam, func, literal_column, make_url, select, text, type_coerce
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import operators, visitors
from sqlalchemy.sql.elements import BindParameter, UnaryExpression

from app.pgpool import LeanPool
from app.sqlite_inline import InlineConnection

_DRIVER_KEY = "reads.driver"
_SHARED_KEY = "reads.shared"


@dataclass(frozen=True, slots=True)
class _Plan:
    sql: str
    slots: tuple[tuple[str | None, Any, Callable[[Any], Any] | None], ...]  # (param, constant, bind)
    row: Any  # a namedtuple class
    results: tuple[tuple[int, Callable[[Any], Any]], ...]  # (column, converter) where one is needed


class Read:
    """A SELECT, built lazily by `build()`, with `bindparam("name")` for each value per call."""

    __slots__ = ("_build", "_plans", "_statement")

    def __init__(self, build: Callable[[], Select[*tuple[Any, ...]]]) -> None:
        self._build = build
        self._statement: Any = None
        self._plans: dict[str, _Plan] = {}

    @property
    def statement(self) -> Any:
        if self._statement is None:
            self._statement = self._build()
        return self._statement

    def _plan(self, dialect: Dialect) -> _Plan:
        plan = self._plans.get(dialect.name)
        if plan is None:
            plan = self._plans[dialect.name] = _compile(self.statement, dialect)
        return plan

    async def all(self, session: AsyncSession, **params: Any) -> list[Any]:
        driver, dialect = await _driver(session)
        plan = self._plan(dialect)
        rows, _ = await _fetch(driver, dialect, plan.sql, _values(plan, params))
        return _made(plan.row._make, plan.results, rows)

    async def first(self, session: AsyncSession, **params: Any) -> Any | None:
        rows = await self.all(session, **params)
        return rows[0] if rows else None

    async def scalar(self, session: AsyncSession, **params: Any) -> Any:
        row = await self.first(session, **params)
        return None if row is None else row[0]


def _values(plan: _Plan, params: dict[str, Any]) -> list[Any]:
    """The statement's parameters in order: constants as compiled, the caller's through their binds."""
    return [
        constant if name is None else (bind(params[name]) if bind else params[name])
        for name, constant, bind in plan.slots
    ]


def _made(
    make: Callable[[Any], Any], converters: tuple[tuple[int, Callable[[Any], Any]], ...], rows: Any
) -> list[Any]:
    """Rows as named tuples, converting only the columns that need it (dates on SQLite)."""
    if not converters:
        return [make(row) for row in rows]
    made = []
    for row in rows:
        values = list(row)
        for column, convert in converters:
            value = values[column]
            if value is not None:
                values[column] = convert(value)
        made.append(make(values))
    return made


@dataclass(slots=True)  # made per request: not frozen, which costs a setattr call per field
class Bound:
    """A `Read` with its values and what its caller makes of the rows: one part of `together()`,
    or run alone with `run()`. A service returns one of these where a page may want its read
    together with others' (the dashboard)."""

    read: Read
    params: dict[str, Any]
    shape: Callable[[list[Any]], Any]

    async def run(self, session: AsyncSession) -> Any:
        return self.shape(await self.read.all(session, **self.params))


@dataclass(frozen=True, slots=True)
class _Part:
    row: Any  # the read's namedtuple class
    converters: tuple[tuple[int, Callable[[Any], Any]], ...]


_TOGETHER: dict[tuple[tuple[Read, ...], str], tuple[_Plan, tuple[_Part, ...]]] = {}


async def together(session: AsyncSession, *parts: Bound, as_one: bool | None = None) -> list[Any]:
    """Several reads at once: what each part's `run()` gives, in order.

    Why: on PostgreSQL each statement is a round trip to the server (~120 µs on loopback here, and
    the page's coroutines woken again for each); the dashboard's six reads were six of them. Here
    they are one statement: each read becomes one column of a single row, its rows as a JSON
    array in the read's own order (json_agg(... ORDER BY ...) on PostgreSQL; on SQLite, whose
    json_group_array takes no ORDER BY before 3.44, each row carries its position under the read's
    ORDER BY and is put in place here), so the order does not depend on how the database feeds
    the aggregate. Values come back as the read alone gives them (dates, datetimes, booleans):
    from ISO text on PostgreSQL, through the dialect's result processors on SQLite. Compiled once
    per combination of reads and database. One statement also means one snapshot: the parts agree
    with each other.

    On SQLite the parts run one after another: there a statement is a call into the library, and
    building and parsing the JSON cost more than the five statements it saves (callgrind, the
    dashboard: 2.06 M instructions a request one after another, 2.42 M as one statement).
    `as_one` overrides the choice; the tests run both ways on both databases.
    """
    driver, dialect = await _driver(session)
    if not (dialect.name != "sqlite" if as_one is None else as_one):
        return [part.shape(await part.read.all(session, **part.params)) for part in parts]
    key = (tuple(part.read for part in parts), dialect.name)
    compiled = _TOGETHER.get(key)
    if compiled is None:
        compiled = _TOGETHER[key] = _compile_together(key[0], dialect)
    plan, shapes = compiled
    merged = {f"p{n}_{name}": value for n, part in enumerate(parts) for name, value in part.params.items()}
    rows, _ = await _fetch(driver, dialect, plan.sql, _values(plan, merged))
    results = []
    positioned = dialect.name == "sqlite"  # each row ends with its position, or the array is in order
    for part, shape, cell in zip(parts, shapes, rows[0], strict=True):
        # Text on SQLite; on PostgreSQL already decoded (the JSON codec of SQLAlchemy's connections
        # and of the reader's).
        items = json.loads(cell) if isinstance(cell, str) else cell
        if positioned:
            items.sort(key=_POSITION)
            for item in items:
                item.pop()  # the position
        results.append(part.shape(_made(shape.row._make, shape.converters, items)))
    return results


_POSITION = itemgetter(-1)
_FROM_ISO: dict[type, Callable[[Any], Any]] = {
    dt.date: dt.date.fromisoformat,
    dt.datetime: dt.datetime.fromisoformat,
}
_AS_JSON = (int, str, bool)  # what JSON gives back as it was


def _compile_together(reads: tuple[Read, ...], dialect: Dialect) -> tuple[_Plan, tuple[_Part, ...]]:
    columns, shapes = [], []
    positioned = dialect.name == "sqlite"
    for n, read in enumerate(reads):
        statement = _prefixed(read.statement, f"p{n}_")
        order = list(statement._order_by_clauses)
        if statement._limit_clause is None and statement._offset_clause is None:
            statement = statement.order_by(None)  # the aggregate keeps the order: one sort, not two
        if positioned:
            position = func.row_number().over(order_by=order).label("_position")
            inner = statement.add_columns(position).subquery(f"part{n}")
            rows = func.json_group_array(func.json_array(*inner.c))
        else:
            inner, rows = _aggregated_in_order(statement, order, len(read.statement.selected_columns), n)
        columns.append(select(type_coerce(rows, Text)).select_from(inner).scalar_subquery().label(f"part{n}"))
        plan = read._plan(dialect)
        # Worked out on both databases, so a column JSON cannot carry is refused on both.
        from_json = tuple(
            (index, convert)
            for index, column in enumerate(read.statement.selected_columns)
            if (convert := _json_converter(column)) is not None
        )
        # On SQLite the JSON holds what sqlite3 would have given: the read's own processors.
        converters = plan.results if positioned else from_json
        shapes.append(_Part(plan.row, converters))
    return _compile(select(*columns), dialect), tuple(shapes)


def _aggregated_in_order(statement: Select[Any], order: list[Any], width: int, n: int) -> tuple[Any, Any]:
    """PostgreSQL: the part as a subquery, and its rows (the first `width` columns) as one JSON
    array in the read's order. Each ORDER BY term's expression becomes a column _o0, _o1, ... of the
    part, and the aggregate orders by those with the term's own direction (no window, no positions)."""
    keys = [_sort_key(clause) for clause in order]
    inner = statement.add_columns(*(key.label(f"_o{i}") for i, key in enumerate(keys))).subquery(f"part{n}")
    array = func.json_build_array(*list(inner.c)[:width])  # the read's own columns come first
    ordered = [
        _sorted_by(clause, key, inner.c[f"_o{i}"])
        for i, (clause, key) in enumerate(zip(order, keys, strict=True))
    ]
    rows = func.json_agg(aggregate_order_by(array, *ordered) if ordered else array)
    return inner, func.coalesce(rows, literal_column("'[]'::json"))


_DIRECTIONS = (operators.asc_op, operators.desc_op, operators.nulls_first_op, operators.nulls_last_op)


def _sort_key(clause: Any) -> Any:
    """The expression an ORDER BY term sorts by, without its ASC/DESC/NULLS modifiers."""
    while isinstance(clause, UnaryExpression) and clause.modifier in _DIRECTIONS:
        clause = clause.element
    return clause


def _sorted_by(clause: Any, key: Any, column: Any) -> Any:
    """The ORDER BY term with its expression `key` replaced by `column` (its modifiers kept)."""
    return visitors.replacement_traverse(clause, {}, lambda element, **_: column if element is key else None)


def _json_converter(column: Any) -> Callable[[Any], Any] | None:
    try:
        kind = column.type.python_type
    except NotImplementedError:
        kind = None
    if kind in _FROM_ISO:
        return _FROM_ISO[kind]
    if kind not in _AS_JSON:
        raise ValueError(f"together(): no JSON conversion for column {column} ({column.type})")
    return None


def _prefixed(statement: Select[Any], prefix: str) -> Select[Any]:
    """The statement with each value parameter renamed prefix+name (parts may share names)."""

    def rename(element: Any, **_: Any) -> Any:
        if isinstance(element, BindParameter) and element.required:
            return bindparam(prefix + element.key, type_=element.type, required=True)
        return None

    return cast("Select[Any]", visitors.replacement_traverse(statement, {}, rename))


_SQL_PLANS: dict[tuple[str, str], tuple[str, tuple[str, ...], list[Any]]] = {}
_SQL_PLANS_MAX = 512


async def sql_rows(session: AsyncSession, sql: str, params: dict[str, Any] | None = None) -> list[Any]:
    """A hand-written SELECT (`:name` parameters) run like a `Read`: compiled once per text and
    database, executed on the session's driver connection, rows as named tuples. For statements
    built as text (the search's keyed queries); values are passed as they are (no type
    processors), so keep to numbers and strings. Texts should come in a bounded set of shapes:
    the plans of at most 512 are kept."""
    driver, dialect = await _driver(session)
    key = (sql, dialect.name)
    plan = _SQL_PLANS.get(key)
    if plan is None:
        if len(_SQL_PLANS) >= _SQL_PLANS_MAX:
            _SQL_PLANS.clear()
        compiled = text(sql).compile(dialect=dialect)
        plan = _SQL_PLANS[key] = (compiled.string, tuple(compiled.positiontup or ()), [None])
    statement, order, row_type = plan
    values = [(params or {})[name] for name in order]
    rows, names = await _fetch(driver, dialect, statement, values)
    if not rows:
        return []
    if row_type[0] is None:
        row_type[0] = namedtuple("Row", names, rename=True)  # type: ignore[misc]
    make = row_type[0]._make
    return [make(row) for row in rows]


async def _fetch(driver: Any, dialect: Dialect, sql: str, values: list[Any]) -> tuple[list[Any], list[str]]:
    """Run a compiled SELECT on the driver connection: its rows and column names."""
    if isinstance(driver, InlineConnection):  # the shared reader, or the inline SQLite writer
        cursor = driver._conn.execute(sql, values)
        return cursor.fetchall(), [d[0] for d in cursor.description]
    if dialect.name == "sqlite":  # aiosqlite, on a writing session
        async with driver.execute(sql, values) as cursor:
            return list(await cursor.fetchall()), [d[0] for d in cursor.description]
    rows = await driver.fetch(sql, *values)  # asyncpg
    return rows, list(rows[0].keys()) if rows else []


def shared_reader(url: str, dialect: Dialect) -> dict[str, Any]:
    """Session `info` for a read-only SQLite sessionmaker: one autocommit sqlite3 connection per
    process, used on the event loop by every GET page. Such a page never checks a connection out of
    the pool (~150 µs a request); each statement reads the latest committed data (WAL), and the
    statement finishes before the loop moves on, so requests cannot interleave inside one."""
    path = make_url(url).database or ":memory:"
    connection = sqlite3.connect(path, timeout=2.0, check_same_thread=False, isolation_level=None)
    return {_SHARED_KEY: (InlineConnection(connection), dialect)}


class PgReader:
    """GET pages' reads on PostgreSQL: each statement on its own, in autocommit, on a connection
    of a small asyncpg pool.

    Why: through a session, a page's reads cost three round trips besides the statements
    themselves: the pool's ping when the connection is checked out, BEGIN, and ROLLBACK when the
    session closes; and each statement went through the session and the pool's greenlet hops.
    Like SQLite's shared reader, a statement here reads the latest committed data; a page that
    needs more than reads (an ORM query) still gets a session (app/routes/_deps.PageSession).
    Connections carry no state between statements, so nothing is reset when one goes back to
    the pool (asyncpg's default reset is one more round trip each time), and the pool is ours
    (app/pgpool.LeanPool): asyncpg's gave each connection back through a task of its own.
    """

    __slots__ = ("_lost", "_pool", "planned")

    def __init__(self, pool: Any, planned: Any = None) -> None:
        # asyncpg is imported only where PostgreSQL is used: on SQLite its import alone made every
        # page ~4 % dearer (callgrind, the dashboard: 2.05 -> 2.13 M instructions a request).
        import asyncpg

        self._pool = pool
        # What a connection the server has ended raises (InternalClientError: one whose server
        # side ended while it sat in the pool).
        self._lost = (
            asyncpg.PostgresConnectionError,
            asyncpg.exceptions.OperatorInterventionError,
            asyncpg.InterfaceError,
            asyncpg.InternalClientError,
            OSError,
        )
        # The reader for statements planned for their values at every run (planned_each_run): a
        # pool of its own whose connections set plan_cache_mode = force_custom_plan; this one where
        # there is none (then planned_each_run sets it in a transaction).
        self.planned: PgReader = PgReader(planned) if planned is not None else self

    async def fetch(self, sql: str, *values: Any) -> list[Any]:
        try:
            return await self._pool.fetch(sql, *values)
        except self._lost:
            # The server dropped the connection (a restart, an administrator, an idle timeout):
            # then it has dropped the others too. The pool replaces them all, and a read is safe
            # to run again (what SQLAlchemy's pre-ping does for the engine, without its round trip).
            await self._pool.expire_connections()
            return await self._pool.fetch(sql, *values)

    @asynccontextmanager
    async def transaction(self, settings: dict[str, str] | None = None) -> AsyncIterator[Any]:
        """One connection in one read-only transaction, for statements that must share it, with
        `settings` (SET LOCAL) sent together with BEGIN: one round trip for both."""
        begin = "BEGIN READ ONLY" + "".join(
            f"; SET LOCAL {name} = '{value}'" for name, value in (settings or {}).items()
        )
        pool = self._pool
        for attempt in (1, 2):
            connection = await pool.acquire()
            reusable = False  # until it has ended its transaction: then it may serve another
            try:
                try:
                    await connection.execute(begin)  # the simple protocol: several statements at once
                except self._lost:
                    if attempt == 2:
                        raise
                    await pool.expire_connections()  # as in fetch(): then try once more
                    continue
                try:
                    yield connection
                except BaseException:
                    with suppress(*self._lost):  # a lost connection has nothing to roll back
                        await connection.execute("ROLLBACK")
                        reusable = True
                    raise
                await connection.execute("COMMIT")
                reusable = True
                return
            finally:
                pool.release(connection, reusable=reusable)

    async def close(self) -> None:
        await self._pool.close()
        if self.planned is not self:
            await self.planned.close()


_PINNED: ContextVar[tuple[Any, Any, Dialect] | None] = ContextVar("reads_pinned", default=None)


def _current(shared: Any) -> Any:
    """What this task's reads through `shared` (a session's reader) run on: the connection or
    reader pinned by one_transaction / planned_each_run, else the reader itself."""
    pinned = _PINNED.get()
    return pinned[1] if pinned is not None and pinned[0] is shared else shared[0]


@contextmanager
def _pinned(shared: Any, driver: Any) -> Iterator[None]:
    token = _PINNED.set((shared, driver, shared[1]))
    try:
        yield
    finally:
        _PINNED.reset(token)


@asynccontextmanager
async def one_transaction(
    session: AsyncSession, settings: dict[str, str] | None = None
) -> AsyncIterator[bool]:
    """Inside, this task's `Read`s and `sql_rows` on `session` share one connection and one
    transaction, with PostgreSQL's `settings` (names and values from the code, never from a
    client) in force for it alone: the search's planner hints. A session runs in one transaction
    already: the settings are made there with `set_config(..., true)` and last until it ends.
    SQLite's shared reader is one connection and has no such settings: nothing is done.
    Gives True where the transaction, and the settings with it, end with the block (PostgreSQL's
    reader, a statement per connection otherwise)."""
    shared: Any = session.info.get(_SHARED_KEY)
    reader = shared is not None and isinstance(shared[0], PgReader)
    current = _current(shared) if reader else None
    if isinstance(current, PgReader):  # statements in autocommit: a transaction begins here
        async with current.transaction(settings) as connection:
            with _pinned(shared, connection):
                yield True
        return
    if settings and dialect_name(session) == "postgresql":
        pairs = ", ".join(f"set_config('{name}', '{value}', true)" for name, value in settings.items())
        if reader:  # inside an outer one_transaction: its pinned transaction has begun
            await sql_rows(session, f"SELECT {pairs}")
        else:
            # Through the session, not sql_rows: SQLAlchemy sends BEGIN with its first statement,
            # and a Read on the driver connection before that would run, and set, outside it.
            await session.execute(text(f"SELECT {pairs}"))
    yield False


# PostgreSQL plans a prepared statement for its values at every run, not once for any (asyncpg
# prepares every statement, and after five runs PostgreSQL may keep one generic plan).
CUSTOM_PLANS = {"plan_cache_mode": "force_custom_plan"}


@asynccontextmanager
async def planned_each_run(session: AsyncSession) -> AsyncIterator[bool]:
    """Inside, this task's `Read`s and `sql_rows` on `session` are planned for their own values at
    every run, on PostgreSQL: for a statement whose best plan depends on them (the search's, where a
    word in one title in eight and a rare one want different plans). On PostgreSQL's reader they go,
    each on its own and in autocommit, to the reader's pool whose connections set it: no BEGIN and
    COMMIT around them (two round trips of the search's five). Elsewhere it is `one_transaction`
    with that setting. `one_transaction` inside begins a transaction there, on one of those
    connections. Gives True where the setting ends with the block."""
    shared: Any = session.info.get(_SHARED_KEY)
    reader = shared[0] if shared is not None and isinstance(shared[0], PgReader) else None
    if reader is not None and reader.planned is not reader and _current(shared) is reader:
        with _pinned(shared, reader.planned):
            yield True
        return
    async with one_transaction(session, CUSTOM_PLANS) as ends_here:
        yield ends_here


async def _json_codecs(connection: Any) -> None:
    # As SQLAlchemy sets them on its own asyncpg connections: json and jsonb values arrive decoded,
    # so a Read gives the same values on the reader as on a session.
    for name in ("json", "jsonb"):
        await connection.set_type_codec(name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


def asyncpg_dsn(url: str) -> str:
    """`postgresql+asyncpg://...` (SQLAlchemy's) as asyncpg itself takes it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def pg_reader(
    url: str, dialect: Dialect, *, server_settings: dict[str, str], size: int = 10
) -> dict[str, Any]:
    """Session `info` for GET pages on PostgreSQL (PgReader): a pool of `size` connections, and one
    of half as many for planned_each_run. Connects on first use, not here."""
    pools = [
        LeanPool(asyncpg_dsn(url), max_size=max_size, server_settings=settings, init=_json_codecs)
        for max_size, settings in (
            (size, server_settings),
            (max(1, size // 2), {**server_settings, **CUSTOM_PLANS}),
        )
    ]
    return {_SHARED_KEY: (PgReader(*pools), dialect)}


async def close_shared_reader(info: dict[str, Any]) -> None:
    shared = info.get(_SHARED_KEY)
    if shared is None:
        return
    if isinstance(shared[0], PgReader):
        await shared[0].close()
    else:
        shared[0].stop()


def dialect_name(session: AsyncSession) -> str:
    """ "sqlite" or "postgresql", without making a page's lazy session (app/routes/_deps.py)."""
    shared = session.info.get(_SHARED_KEY)
    if shared is not None:
        return str(shared[1].name)
    return str(session.get_bind().dialect.name)


async def _driver(session: AsyncSession) -> tuple[Any, Dialect]:
    """The driver connection of the session's current transaction (opened if need be), memoised
    per transaction: after a commit the session may hand out another pooled connection."""
    shared = session.info.get(_SHARED_KEY)
    if shared is not None:
        return _current(shared), shared[1]
    transaction = session.sync_session.get_transaction()
    cached = session.info.get(_DRIVER_KEY)
    if cached is not None and transaction is not None and cached[0] is transaction:
        return cached[1], cached[2]
    connection = await session.connection()
    driver = (await connection.get_raw_connection()).driver_connection
    dialect = connection.dialect
    session.info[_DRIVER_KEY] = (session.sync_session.get_transaction(), driver, dialect)
    return driver, dialect


def _compile(statement: Any, dialect: Dialect) -> _Plan:
    compiled = statement.compile(dialect=dialect)
    required = {b.key: b for b in compiled.binds.values() if b.required}
    for bind in required.values():
        if bind.expanding:
            raise ValueError(f"Read: a list parameter ({bind.key}) is not supported; build the IN into SQL")
    expanded = compiled.construct_expanded_state(dict.fromkeys(required))
    slots: list[tuple[str | None, Any, Callable[[Any], Any] | None]] = []
    for name in expanded.positiontup or ():
        if name in required:
            processor = required[name].type.dialect_impl(dialect).bind_processor(dialect)
            slots.append((name, None, processor))
        else:
            constant = expanded.parameters[name]
            known = compiled.binds.get(name)
            processor = (
                known.type.dialect_impl(dialect).bind_processor(dialect) if known is not None else None
            )
            if processor is not None and constant is not None:
                constant = processor(constant)
            slots.append((None, constant, None))
    columns = list(statement.selected_columns)
    names = [column.key or f"column{n}" for n, column in enumerate(columns)]  # count(...) has no name
    if len(set(names)) != len(names):
        raise ValueError(f"Read: duplicate column names {names}; label them")
    processors = [column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns]
    return _Plan(
        sql=expanded.statement,
        slots=tuple(slots),
        row=namedtuple("Row", names),  # type: ignore[misc,arg-type]
        results=tuple((n, p) for n, p in enumerate(processors) if p is not None),
    )

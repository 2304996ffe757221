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

import sqlite3
from collections import namedtuple
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, make_url, text
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession

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
        values = [
            constant if name is None else (bind(params[name]) if bind else params[name])
            for name, constant, bind in plan.slots
        ]
        rows, _ = await _fetch(driver, dialect, plan.sql, values)
        make = plan.row._make
        if not plan.results:
            return [make(row) for row in rows]
        converted = []
        for row in rows:
            values = list(row)
            for column, convert in plan.results:  # only the columns that need it (dates on SQLite)
                value = values[column]
                if value is not None:
                    values[column] = convert(value)
            converted.append(make(values))
        return converted

    async def first(self, session: AsyncSession, **params: Any) -> Any | None:
        rows = await self.all(session, **params)
        return rows[0] if rows else None

    async def scalar(self, session: AsyncSession, **params: Any) -> Any:
        row = await self.first(session, **params)
        return None if row is None else row[0]


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


def close_shared_reader(info: dict[str, Any]) -> None:
    shared = info.get(_SHARED_KEY)
    if shared is not None:
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
        return shared  # type: ignore[no-any-return]
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

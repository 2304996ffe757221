"""app/reads.py: a Read returns what SQLAlchemy would, on both databases, inside the session's transaction."""

import dataclasses
import datetime as dt
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app import reads
from app.db import make_engine, make_sessionmaker, pg_server_settings
from app.models import Bib, Branch, Hold, Item, Loan
from app.reads import Read
from app.services import holds, loans
from app.settings import load_settings
from tests.support import BACKEND

LOANS_OF = Read(
    lambda: (
        select(Loan.id, Loan.due_on, Loan.loaned_on, Bib.title)
        .join(Item, Item.id == Loan.item_id)
        .join(Bib, Bib.id == Item.bib_id)
        .where(Loan.patron_id == bindparam("patron_id"), Loan.due_on >= bindparam("since"))
        .order_by(Loan.id)
    )
)


async def _hanako(db: AsyncSession) -> int:
    from app.models import Patron

    patron_id = await db.scalar(select(Patron.id).where(Patron.card_number == "100000017"))
    assert patron_id is not None
    return patron_id


async def test_rows_match_sqlalchemy_with_dates_converted(db: AsyncSession) -> None:
    hanako = await _hanako(db)
    since = dt.date(2000, 1, 1)
    expected = (await db.execute(LOANS_OF.statement, {"patron_id": hanako, "since": since})).all()
    got = await LOANS_OF.all(db, patron_id=hanako, since=since)
    assert len(got) == 3
    assert [tuple(row) for row in got] == [tuple(row) for row in expected]
    assert isinstance(got[0].due_on, dt.date) and isinstance(got[0].title, str)
    assert await LOANS_OF.all(db, patron_id=hanako, since=dt.date(2999, 1, 1)) == []
    assert await LOANS_OF.first(db, patron_id=-1, since=since) is None


async def test_constant_lists_and_a_parameter_used_twice(db: AsyncSession) -> None:
    """The holds page's statement: an IN list of constants, a correlated count, datetimes."""
    from app.models import Patron

    sato = await db.scalar(select(Patron.id).where(Patron.card_number == "100000066"))
    since = dt.datetime(2000, 1, 1)
    expected = (await db.execute(holds._list_query(), {"patron_id": sato, "since": since})).all()
    got = await holds._LIST.all(db, patron_id=sato, since=since)
    assert got and [tuple(r) for r in got] == [tuple(r) for r in expected]
    assert isinstance(got[0].placed_at, dt.datetime)


async def test_sees_the_sessions_own_writes_and_follows_a_commit(db: AsyncSession) -> None:
    hanako = await _hanako(db)
    first = (await loans.list_loans(db, hanako, today=dt.date.today(), policy=_policy()))[0]
    await db.execute(update(Loan).where(Loan.id == first.id).values(due_on=dt.date(2031, 1, 2)))
    row = await LOANS_OF.first(db, patron_id=hanako, since=dt.date(2031, 1, 1))
    assert row is not None and row.id == first.id  # uncommitted, same transaction
    await db.commit()
    # After the commit the session may use another connection: the Read opens the new transaction.
    assert (await LOANS_OF.first(db, patron_id=hanako, since=dt.date(2031, 1, 1))).id == first.id


@asynccontextmanager
async def _reader(database_url: str) -> AsyncIterator[tuple[AsyncEngine, dict[str, Any]]]:
    """GET pages' reader as the app makes it (SQLite's shared inline connection, PostgreSQL's
    pool) with its engine; both closed after."""
    if BACKEND == "sqlite":
        engine = make_engine(database_url, inline_reads=True)
        info = reads.shared_reader(database_url, engine.dialect)
    else:
        engine = make_engine(database_url)
        settings = pg_server_settings(10.0)
        info = await reads.pg_reader(database_url, engine.dialect, server_settings=settings, size=2)
    try:
        yield engine, info
    finally:
        await reads.close_shared_reader(info)
        await engine.dispose()


async def test_shared_reader_sees_what_others_commit(database_url: str, db: AsyncSession) -> None:
    async with _reader(database_url) as (engine, info):
        maker = make_sessionmaker(engine, info=info)
        count = Read(lambda: select(func.count(Hold.id)).where(Hold.status == bindparam("status")))
        async with maker() as reader:
            before = await count.scalar(reader, status="waiting")
        await db.execute(update(Hold).values(status="cancelled"))
        await db.commit()
        async with maker() as reader:
            after = await count.scalar(reader, status="waiting")
            assert reader.sync_session.get_transaction() is None  # no pooled connection was opened
        assert before > 0 and after == 0


async def test_a_get_pages_session_is_made_only_when_more_than_reads_is_asked(database_url: str) -> None:
    """app/routes/_deps.PageSession: Reads run on the shared reader with no AsyncSession made;
    an ORM query makes one (and it is closed after); the shared dict cannot be written through it."""

    from app.routes._deps import PageSession

    async with _reader(database_url) as (engine, info):
        page = PageSession(make_sessionmaker(engine, info=info), info)
        assert isinstance(page, AsyncSession)  # what Litestar checks against the handler's annotation
        count = Read(lambda: select(func.count(Bib.id)))
        assert await count.scalar(page) > 0  # type: ignore[arg-type]
        assert reads.dialect_name(page) == BACKEND  # type: ignore[arg-type]
        assert page._session is None
        with pytest.raises(TypeError):
            page.info["anything"] = 1  # type: ignore[index]
        assert (await page.execute(text("SELECT count(*) FROM bibs"))).scalar_one() > 0
        made = page._session
        assert made is not None and made.sync_session.get_transaction() is not None
        await page.close_if_used()
        assert made.sync_session.get_transaction() is None


def test_refuses_what_it_cannot_run_fast() -> None:
    settings = load_settings({"APP_ENV": "test", "SECRET_KEY": "s" * 48})
    dialect = make_engine(settings.database_url).dialect
    with pytest.raises(ValueError, match="list parameter"):
        Read(lambda: select(Bib.id).where(Bib.id.in_(bindparam("ids", expanding=True))))._plan(dialect)
    with pytest.raises(ValueError, match="duplicate column"):
        Read(lambda: select(Bib.id, Item.id).join(Item, Item.bib_id == Bib.id))._plan(dialect)


def _policy():  # type: ignore[no-untyped-def]
    from app.policy import load_policy

    return load_policy("default")


async def test_sql_rows_match_sqlalchemy_text_and_see_the_sessions_writes(db: AsyncSession) -> None:

    sql = (
        "SELECT b.id, b.title, (SELECT count(*) FROM items i WHERE i.bib_id = b.id) AS items "
        "FROM bibs b WHERE b.pub_year >= :year AND (b.id = :one OR b.id > :one) ORDER BY b.id LIMIT :limit"
    )
    params = {"year": 1900, "one": 3, "limit": 7}
    expected = [tuple(r) for r in (await db.execute(text(sql), params)).all()]
    got = await reads.sql_rows(db, sql, params)
    assert [tuple(r) for r in got] == expected and len(got) == 7
    assert got[0].title == expected[0][1] and got[0].items == expected[0][2]  # named by the columns
    assert await reads.sql_rows(db, sql, {**params, "year": 3000}) == []
    # Inside the session's transaction: it sees an uncommitted change.
    await db.execute(update(Bib).where(Bib.id == got[0].id).values(title="書き換え中"))
    assert (await reads.sql_rows(db, sql, params))[0].title == "書き換え中"
    await db.rollback()


async def _holds_in_every_state(db: AsyncSession, patron_id: int, today: dt.date) -> None:
    """One hold of each state the lists show, and one cancelled too long ago to be shown."""
    now = dt.datetime.combine(today, dt.time(10))
    branch = await db.scalar(select(Branch.id).order_by(Branch.id))
    held = select(Hold.bib_id).where(Hold.patron_id == patron_id)
    free = (await db.scalars(select(Bib.id).where(Bib.id.not_in(held)).order_by(Bib.id).limit(4))).all()
    states = [
        {"status": "ready", "shelf_until": today + dt.timedelta(days=7)},
        {"status": "in_transit"},
        {"status": "cancelled", "cancelled_at": now - dt.timedelta(days=1), "cancel_reason": "patron"},
        {"status": "cancelled", "cancelled_at": now - dt.timedelta(days=400), "cancel_reason": "patron"},
    ]
    for n, (bib_id, values) in enumerate(zip(free, states, strict=True)):
        placed = now - dt.timedelta(days=30 - n)
        db.add(Hold(patron_id=patron_id, bib_id=bib_id, placed_at=placed, pickup_branch_id=branch, **values))
    await db.flush()


async def test_the_dashboards_lines_are_the_lists_views_cut_down(db: AsyncSession) -> None:
    """loans.lines and holds.lines (the dashboard's reads) give every patron the loans and holds
    that list_loans and list_holds give, in the same order, with the same titles, dates and states."""
    from app.models import Patron

    policy = _policy()
    today = dt.date.today()
    await _holds_in_every_state(db, await _hanako(db), today)
    seen_statuses: set[str] = set()
    overdue_seen = False
    for patron_id in (await db.scalars(select(Patron.id))).all():
        views = await loans.list_loans(db, patron_id, today=today, policy=policy)
        expected = [(v.title, v.due_on, v.overdue) for v in views]
        assert [
            (x.title, x.due_on, x.overdue) for x in await loans.lines(db, patron_id, today=today)
        ] == expected
        overdue_seen |= any(v.overdue for v in views)
        hold_views = await holds.list_holds(db, patron_id, today=today, policy=policy)
        wanted = [
            (h.title, h.status, h.pickup_ja, h.pickup_en, h.shelf_until, h.cancelled_at) for h in hold_views
        ]
        got = await holds.lines(db, patron_id, today=today, policy=policy)
        assert [
            (h.title, h.status, h.pickup_ja, h.pickup_en, h.shelf_until, h.cancelled_at) for h in got
        ] == wanted
        seen_statuses |= {h.status for h in hold_views}
    assert overdue_seen and {"waiting", "ready", "in_transit", "cancelled"} <= seen_statuses, seen_statuses


def _values(row: Any) -> list[Any]:
    if isinstance(row, tuple):
        return list(row)
    return [getattr(row, field.name) for field in dataclasses.fields(row)]


def _dashboard_parts(patron_id: int, today: dt.date) -> list[reads.Bound]:
    from app.services import alerts, lists, marathon, news

    return [
        loans.lines_read(patron_id, today=today),
        holds.lines_read(patron_id, today=today, policy=_policy()),
        marathon.progress_read(patron_id),
        lists.summaries_read(patron_id),
        alerts.alerts_read(patron_id),
        news.current_read(today),
    ]


async def test_reads_together_give_what_each_gives_alone_as_one_statement_or_not(db: AsyncSession) -> None:
    """reads.together, as one statement (PostgreSQL's way) and one read after another (SQLite's),
    on both databases: for every patron the same rows, in the same order, with the same types
    (dates, datetimes, booleans, counts), empty parts included; inside the session's transaction."""
    from app.models import Alert, BookList, BookListEntry, Marathon, News, Patron

    today = dt.date.today()
    hanako = await _hanako(db)
    await _holds_in_every_state(db, hanako, today)
    bib = await db.scalar(select(Bib.id).order_by(Bib.id))
    shelf = BookList(patron_id=hanako, name="読みたい <本>", memo="“引用” & 'quote'")
    db.add_all([shelf, BookList(patron_id=hanako, name="空のリスト")])
    await db.flush()
    db.add(BookListEntry(list_id=shelf.id, bib_id=bib))
    db.add(Marathon(patron_id=hanako, goal=12, starts_on=today - dt.timedelta(days=90), ends_on=today))
    db.add(Alert(patron_id=hanako, name="猫", query='{"q": "猫"}'))
    db.add_all(
        [
            News(title_ja="休館", body_ja="改行\nあり", urgent=True, published_on=today, shown_until=today),
            News(
                title_ja="お知らせ",
                title_en="News",
                published_on=today - dt.timedelta(days=3),
                mail_requested=True,
                mailed_at=dt.datetime(2026, 1, 2, 3, 4, 5, 678901),
            ),
        ]
    )
    await db.flush()
    filled = 0
    for patron_id in (await db.scalars(select(Patron.id).order_by(Patron.id))).all():
        alone = [await part.run(db) for part in _dashboard_parts(patron_id, today)]
        for as_one in (True, False):
            got = await reads.together(db, *_dashboard_parts(patron_id, today), as_one=as_one)
            assert got == alone, (patron_id, as_one)
            for part_got, part_alone in zip(got, alone, strict=True):  # same values, same types
                for row_got, row_alone in zip(part_got, part_alone, strict=True):
                    assert [type(v) for v in _values(row_got)] == [type(v) for v in _values(row_alone)]
        filled += all(alone[:5])
    assert filled >= 1  # Hanako has something in every part
    news_rows = alone[5]
    assert news_rows[0].urgent is True and news_rows[0].body_ja == "改行\nあり"
    assert any(n.mailed_at == dt.datetime(2026, 1, 2, 3, 4, 5, 678901) for n in news_rows)


async def test_reads_together_refuses_a_column_json_cannot_carry(db: AsyncSession) -> None:
    average = Read(lambda: select(func.avg(Bib.pub_year).label("year")))
    with pytest.raises(ValueError, match="no JSON conversion"):
        await reads.together(db, reads.Bound(average, {}, list), as_one=True)


async def test_postgresql_reader_reconnects_after_the_server_drops_its_connection(database_url: str) -> None:
    if BACKEND != "postgresql":
        pytest.skip("PgReader is PostgreSQL's reader; SQLite's has no connection to lose")
    count = Read(lambda: select(func.count(Bib.id)))
    async with _reader(database_url) as (engine, info), make_sessionmaker(engine, info=info)() as reader:
        before = await count.scalar(reader)
        async with reads.planned_each_run(reader):  # a connection of the planned reader's pool too
            assert await count.scalar(reader) == before
        async with engine.connect() as admin:  # as a server restart or an idle timeout would
            dropped = await admin.scalar(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        assert dropped >= 2
        assert await count.scalar(reader) == before > 0
        async with reads.planned_each_run(reader):
            assert await count.scalar(reader) == before
            async with reads.one_transaction(reader, {"enable_seqscan": "off"}):
                assert await count.scalar(reader) == before


async def _set_in_the_session_until_it_ends(
    db: AsyncSession, block: AbstractAsyncContextManager[bool], count: Read, titles: int, mode: str
) -> None:
    """On a session (not the reader) the block's plan_cache_mode is set in the session's own
    transaction: it does not end with the block, but with the transaction."""
    async with block as ends_here:
        assert ends_here is False
        assert await count.scalar(db) == titles
    if BACKEND == "postgresql":
        assert (await reads.sql_rows(db, mode))[0].mode == "force_custom_plan"  # until it ends
        await db.rollback()
        assert (await reads.sql_rows(db, mode))[0].mode == "auto"


async def test_planned_each_run_plans_for_the_values_without_a_transaction(
    database_url: str, db: AsyncSession
) -> None:
    """reads.planned_each_run (the search's statements): on PostgreSQL's reader each statement
    runs in autocommit on a connection that plans it anew at every run (no BEGIN and COMMIT round
    trips); a transaction begun inside (the search's walk hints) runs there with its settings, which
    end with it; the reader's other connections plan as usual. On a session the setting is made in
    its transaction. On SQLite nothing changes."""
    mode = "SELECT current_setting('plan_cache_mode') AS mode, current_setting('enable_seqscan') AS seqscan"

    async def one_transaction_each(reader: AsyncSession) -> bool:
        """Whether two statements run in two transactions (now() is the transaction's start)."""
        first, second = [(await reads.sql_rows(reader, "SELECT now() AS t"))[0].t for _ in "ab"]
        return bool(first != second)

    count = Read(lambda: select(func.count(Bib.id)))
    async with _reader(database_url) as (engine, info):
        async with make_sessionmaker(engine, info=info)() as reader:
            titles = await count.scalar(reader)
            async with reads.planned_each_run(reader) as ends_here:
                assert ends_here is (BACKEND == "postgresql")
                assert await count.scalar(reader) == titles > 0
                if BACKEND == "postgresql":
                    assert tuple((await reads.sql_rows(reader, mode))[0]) == ("force_custom_plan", "on")
                    assert await one_transaction_each(reader)
                    async with reads.one_transaction(reader, {"enable_seqscan": "off"}) as inner_ends_here:
                        assert inner_ends_here is True
                        assert tuple((await reads.sql_rows(reader, mode))[0]) == ("force_custom_plan", "off")
                        assert not await one_transaction_each(reader)
                    assert tuple((await reads.sql_rows(reader, mode))[0]) == ("force_custom_plan", "on")
            if BACKEND == "postgresql":
                assert (await reads.sql_rows(reader, mode))[0].mode == "auto"
            assert reader.sync_session.get_transaction() is None  # no session was opened for any of it
        await _set_in_the_session_until_it_ends(db, reads.planned_each_run(db), count, titles, mode)


async def test_one_transaction_pins_a_connection_for_transaction_local_settings(
    database_url: str, db: AsyncSession
) -> None:
    """reads.one_transaction: on PostgreSQL's reader (a statement per pooled connection) the
    statements inside share one connection and transaction, with the settings given (sent with
    BEGIN) in force for them and gone after; on a session they are set in its transaction and last
    as long as it; on SQLite nothing is done and reads go on as before."""
    count = Read(lambda: select(func.count(Bib.id)))
    hints = {"plan_cache_mode": "force_custom_plan"}
    mode = "SELECT current_setting('plan_cache_mode') AS mode"
    async with _reader(database_url) as (engine, info):
        async with make_sessionmaker(engine, info=info)() as reader:
            titles = await count.scalar(reader)
            async with reads.one_transaction(reader, hints) as ends_here:
                assert ends_here is (BACKEND == "postgresql")
                assert await count.scalar(reader) == titles > 0
                if BACKEND == "postgresql":
                    assert (await reads.sql_rows(reader, mode))[0].mode == "force_custom_plan"
                    pids = {
                        (await reads.sql_rows(reader, "SELECT pg_backend_pid() AS pid"))[0].pid for _ in "abc"
                    }
                    assert len(pids) == 1
                    # Nested: the outer transaction's connection, the setting made in it.
                    walk = {"enable_seqscan": "off"}
                    async with reads.one_transaction(reader, walk) as inner_ends_here:
                        assert inner_ends_here is False
                        seqscan = "SELECT current_setting('enable_seqscan') AS on, pg_backend_pid() AS pid"
                        inner = (await reads.sql_rows(reader, seqscan))[0]
                        assert inner.on == "off" and inner.pid in pids
            if BACKEND == "postgresql":
                assert (await reads.sql_rows(reader, mode))[0].mode == "auto"  # ended with its transaction
            with pytest.raises(ZeroDivisionError):
                async with reads.one_transaction(reader, hints):
                    await count.scalar(reader)
                    raise ZeroDivisionError
            assert await count.scalar(reader) == titles  # rolled back, the connection back in the pool
            assert reader.sync_session.get_transaction() is None  # no session was opened for any of it
        await _set_in_the_session_until_it_ends(db, reads.one_transaction(db, hints), count, titles, mode)


async def test_search_through_the_get_pages_reader_finds_what_a_session_finds(
    database_url: str, db: AsyncSession
) -> None:
    """The search page reads through the reader, its statements pinned to one transaction on
    PostgreSQL (reads.one_transaction): the same titles, counts and availability as through a session."""
    from app.services import catalog

    found = 0
    async with _reader(database_url) as (engine, info):
        async with make_sessionmaker(engine, info=info)() as reader:
            for q, sort in (
                ("の", "relevance"),
                ("の", "newest"),
                ("猫", "relevance"),
                ("garden", "relevance"),
            ):
                params = catalog.SearchParams(q=q, sort=sort)
                through_session = await catalog.search(db, params)
                through_reader = await catalog.search(reader, params)  # type: ignore[arg-type]
                assert through_reader.total == through_session.total
                assert through_reader.hits == through_session.hits, (q, sort)
                found += len(through_session.hits)
            assert reader.sync_session.get_transaction() is None
        assert found >= 20

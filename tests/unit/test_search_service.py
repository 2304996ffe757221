"""Catalogue search: Japanese substrings and readings, English prefixes, filters, hostile input."""

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Bib, Branch, Favourite, Hold, Item, Patron
from app.services import catalog
from app.services.search_text import bigram_text, normalize, term_expression
from tests.support import sync_engine


def test_normalisation_folds_katakana_and_full_width() -> None:
    assert normalize("ワガハイ ＡＢＣ１２") == "わがはい abc12"


def test_japanese_is_indexed_as_bigrams() -> None:
    assert bigram_text("吾輩は猫") == "吾輩 輩は は猫"
    assert bigram_text("Learning Python 入門") == "learning python 入門"


@pytest.mark.parametrize(
    "hostile", ['"', "*", "-", "NEAR", "OR", 'a" OR "b', "(((", "^", ":", "title:x", "🐈", "\x00"]
)
def test_fts_syntax_never_reaches_the_index_unquoted(hostile: str) -> None:
    expression = term_expression(hostile).expression
    if expression is not None:
        for token in expression.replace("AND", " ").split():
            assert token.startswith(('"', "{", "chars")) or token in (
                ":",
                "title",
                "author",
                "publisher",
                "subject}",
                "{title",
            )


async def _titles(db: AsyncSession, **raw: str) -> list[str]:
    branches = (await db.scalars(select(Branch.id))).all()
    page = await catalog.search(db, catalog.parse_params(raw, branches))
    return [hit.title for hit in page.hits]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("猫で", "吾輩は猫である"),  # two characters from the middle of a title
        ("わがはい", "吾輩は猫である"),  # by reading
        ("ワガハイ", "吾輩は猫である"),  # katakana reading
        ("ぎんがてつどう", "銀河鉄道の夜"),
        ("漱石", "こころ"),  # by author
        ("pride", "Pride and Prejudice"),
        ("PRID", "Pride and Prejudice"),  # prefix, any case
        ("ｐｒｉｄｅ", "Pride and Prejudice"),  # full-width letters
        ("sherlock holmes", "The Adventures of Sherlock Holmes"),
        ("adv", "The Adventures of Sherlock Holmes"),  # the shortest prefix indexed as such
        ("adventures", "The Adventures of Sherlock Holmes"),  # longer than the longest indexed prefix
        ("pr", "Pride and Prejudice"),  # shorter than any indexed prefix
        ("9784469000001", "日本語大辞典 第二版"),
        ("星の図書館", "星の図書館 第1巻"),
    ],
)
async def test_simple_search_finds(db: AsyncSession, query: str, expected: str) -> None:
    assert expected in await _titles(db, q=query)


@pytest.mark.parametrize(
    ("query", "absent"),
    [
        ("ventures", "The Adventures of Sherlock Holmes"),  # a word's end is not its prefix
        ("adventurers", "The Adventures of Sherlock Holmes"),  # same first eight letters, longer word
    ],
)
async def test_simple_search_does_not_find(db: AsyncSession, query: str, absent: str) -> None:
    assert absent not in await _titles(db, q=query)


@pytest.mark.parametrize(
    "query",
    [
        '"',
        '"unbalanced',
        "*",
        "-",
        "NEAR",
        "OR",
        "a OR b",
        "x" * 1000,
        "🐈‍⬛🐈",
        "猫" * 300,
        "'; DROP TABLE bibs; --",
        "\\",
        "%",
        "_",
    ],
)
async def test_hostile_queries_answer_without_error(db: AsyncSession, query: str) -> None:
    await _titles(db, q=query)
    assert await db.scalar(select(Bib.id).limit(1)) is not None  # the table is still there


async def test_newest_sort_orders_by_year(db: AsyncSession) -> None:
    branches = (await db.scalars(select(Branch.id))).all()
    page = await catalog.search(db, catalog.parse_params({"q": "星の図書館", "sort": "newest"}, branches))
    years = [hit.pub_year for hit in page.hits]
    assert years == sorted(years, reverse=True) and len(years) == 4


async def test_advanced_filters(db: AsyncSession) -> None:
    assert await _titles(db, title="星の図書館", year_from="2023", year_to="2024") == [
        "星の図書館 第4巻",
        "星の図書館 第3巻",
    ]
    assert await _titles(db, author="austen") == ["Pride and Prejudice"]
    assert await _titles(db, isbn="978-4-469-00000-1") == ["日本語大辞典 第二版"]
    magazines = await _titles(db, material_type="magazine")
    types = {b.title: b.material_type for b in (await db.scalars(select(Bib))).all()}
    assert magazines and all(types[t] == "magazine" for t in magazines)
    central = await db.scalar(select(Branch.id).where(Branch.code == "central"))
    on_shelf_central = await _titles(db, q="星の図書館", branch=str(central))
    assert "星の図書館 第1巻" in on_shelf_central
    assert await _titles(db, title="存在しない書名です") == []


async def test_availability_sentences(db: AsyncSession) -> None:
    branches = (await db.scalars(select(Branch.id))).all()
    page = await catalog.search(db, catalog.parse_params({"q": "銀河鉄道の夜"}, branches))
    hit = page.hits[0]
    # Two copies: one on loan to Hanako, one on the shelf; Sato waits.
    assert (hit.availability.items, hit.availability.on_shelf, hit.availability.waiting) == (2, 1, 1)


async def test_relevance_ranks_a_title_match_above_a_subject_match(db: AsyncSession) -> None:
    """Relevance weighs where a word is found (title over subject) on both databases; newest
    orders the same matches by year. The titles and their availability come with the page's keys
    in one statement, in the keys' order."""
    db.add(Bib(title="灯台守の日記", pub_year=1990))
    db.add(Bib(title="海辺の暮らし", subjects="灯台守 / 海岸", pub_year=2020))
    await db.commit()
    ids = (await db.scalars(select(Bib.id).where(Bib.pub_year.in_((1990, 2020))))).all()
    await catalog.reindex_bibs(db, list(ids))
    await db.commit()
    assert await _titles(db, q="灯台守") == ["灯台守の日記", "海辺の暮らし"]
    assert await _titles(db, q="灯台守", sort="newest") == ["海辺の暮らし", "灯台守の日記"]


async def test_the_favourite_marks_on_a_page_are_the_searching_patrons_own(db: AsyncSession) -> None:
    """Searched for a patron, each title says whether it is among that patron's favourites:
    another patron's marks never show, and a search without a patron marks nothing."""
    hanako, other = (await db.scalars(select(Patron.id).order_by(Patron.id).limit(2))).all()
    kokoro = await db.scalar(select(Bib.id).where(Bib.title == "こころ"))
    db.add(Favourite(patron_id=other, bib_id=kokoro))
    await db.commit()
    params = catalog.parse_params({"q": "漱石"}, [])

    async def marked(patron_id: int | None) -> set[int]:
        return {hit.id for hit in (await catalog.search(db, params, patron_id)).hits if hit.favourite}

    assert kokoro in {hit.id for hit in (await catalog.search(db, params, hanako)).hits}
    assert await marked(hanako) == set() and await marked(None) == set()
    assert await marked(other) == {kokoro}
    db.add(Favourite(patron_id=hanako, bib_id=kokoro))
    await db.commit()
    assert await marked(hanako) == {kokoro}


async def test_availability_counts_every_kind_of_copy(db: AsyncSession) -> None:
    """Each of the five counts on its own: copies, loanable copies, loanable ones on the shelf, the
    libraries those stand in (where a copy is now, else its home), holds waiting."""
    branches = (await db.scalars(select(Branch.id).order_by(Branch.id))).all()
    first, second = branches[0], branches[1]
    bib = Bib(title="在庫の数え方の本", authors="試験", publisher="", material_type="book")
    db.add(bib)
    await db.flush()
    copies = [
        # (home, where it is now, status, loanable)
        (first, None, "on_shelf", True),
        (first, None, "on_shelf", True),  # the same library again
        (first, second, "on_shelf", True),  # sent to the second library: stands there
        (second, None, "on_loan", True),
        (second, None, "on_shelf", False),  # reference only: not counted as available
        (first, None, "missing", True),
    ]
    for n, (home, now, status, loanable) in enumerate(copies):
        db.add(
            Item(
                barcode=f"AV{bib.id}-{n}",
                bib_id=bib.id,
                branch_id=home,
                location_branch_id=now,
                status=status,
                loanable=loanable,
            )
        )
    patrons = (await db.scalars(select(Patron.id).order_by(Patron.id))).all()
    for n, patron in enumerate(patrons[:3]):
        status = "waiting" if n < 2 else "cancelled"  # a cancelled hold waits for nothing
        db.add(
            Hold(
                patron_id=patron,
                bib_id=bib.id,
                pickup_branch_id=first,
                status=status,
                placed_at=dt.datetime(2026, 11, 1, 10, n),
            )
        )
    await db.flush()
    await catalog.reindex_bibs(db, [bib.id])
    await db.commit()
    page = await catalog.search(db, catalog.parse_params({"q": "在庫の数え方"}, branches))
    (hit,) = [h for h in page.hits if h.id == bib.id]
    assert hit.availability == catalog.Availability(
        items=6, loanable_items=5, on_shelf=3, shelf_branches=2, waiting=2
    )


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"sort": "drop"}, "sort"),
        ({"page": "-1"}, "page"),
        ({"page": "99999"}, "page"),
        ({"page": "x"}, "page"),
        ({"year_from": "20xx"}, "year"),
        ({"year_from": "2020", "year_to": "2019"}, "year"),
        ({"isbn": "12"}, "isbn"),
        ({"material_type": "scroll"}, "material_type"),
        ({"branch": "999"}, "branch"),
    ],
)
def test_bad_parameters_are_named(raw: dict[str, str], field: str) -> None:
    with pytest.raises(catalog.SearchError) as problem:
        catalog.parse_params({"q": "猫", **raw}, [1, 2, 3])
    assert problem.value.field == field


async def test_index_follows_updates(db: AsyncSession) -> None:
    bib_id = await db.scalar(select(Bib.id).where(Bib.title == "こころ"))
    await db.execute(
        update(Bib)
        .where(Bib.id == bib_id)
        .values(title="心 新装版", title_reading="こころ しんそうばん", pub_year=2025)
    )
    await catalog.reindex_bibs(db, [bib_id])
    await db.commit()
    assert "心 新装版" in await _titles(db, q="しんそう")
    assert "心 新装版" in await _titles(db, q="新装", year_from="2025")
    assert "こころ" not in await _titles(db, q="こころ")


def test_a_full_reindex_writes_every_title_in_key_order(database_url: str) -> None:
    """After `reindex`, every title is found again; on PostgreSQL the table holds the rows in key
    order (newest last), the order the search walks them (migration 0015)."""
    engine = sync_engine(database_url)
    try:
        with engine.begin() as connection:
            bibs = connection.scalar(text("SELECT count(*) FROM bibs"))
            # Out of order first: a newer edition of an old title gets the highest key.
            connection.execute(text("UPDATE bibs SET pub_year = 2099 WHERE id = (SELECT min(id) FROM bibs)"))
            assert catalog.reindex_all_sync(connection) == bibs
        with engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                physical = connection.scalars(text("SELECT key FROM bib_search ORDER BY ctid")).all()
            else:
                physical = connection.scalars(text("SELECT rowid FROM bib_fts")).all()
            keys = connection.scalars(text("SELECT search_key FROM bibs")).all()
    finally:
        engine.dispose()
    assert len(physical) == bibs and sorted(keys) == physical
    assert physical[-1] >> 32 == 2099


def test_reindex_command_rebuilds_the_index(database_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": database_url, "VAR_DIR": str(tmp_path), "APP_ENV": "test"}
    done = subprocess.run(
        [sys.executable, "-m", "app", "reindex"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    engine = sync_engine(database_url)
    try:
        with engine.connect() as connection:
            bibs = connection.scalar(text("SELECT count(*) FROM bibs"))
            table = "bib_search" if connection.dialect.name == "postgresql" else "bib_fts"
            indexed = connection.scalar(text(f"SELECT count(*) FROM {table}"))
    finally:
        engine.dispose()
    assert f"Search index rebuilt: {bibs} titles in " in done.stdout and indexed == bibs


async def test_detail_has_holdings_series_and_waiting(db: AsyncSession) -> None:
    bib_id = await db.scalar(select(Bib.id).where(Bib.title == "銀河鉄道の夜"))
    detail = await catalog.get_detail(db, bib_id)
    assert detail.waiting == 1 and detail.reservable
    assert any(h.status == "on_loan" and h.due_on is not None for h in detail.holdings)
    vol2 = await db.scalar(select(Bib.id).where(Bib.title == "星の図書館 第2巻"))
    series = await catalog.get_detail(db, vol2)
    assert [v.volume for v in series.volumes] == [1, 2, 3, 4] and series.series_title == "星の図書館"
    ref = await db.scalar(select(Bib.id).where(Bib.control_number == "demo-reference"))
    assert not (await catalog.get_detail(db, ref)).reservable
    with pytest.raises(catalog.BibNotFound):
        await catalog.get_detail(db, 999999)


async def test_a_broad_search_is_capped_and_shown_newest_first(db: AsyncSession) -> None:
    """More than 1 000 matches: the count is capped, the page is the newest titles (both databases take
    a different plan here: PostgreSQL walks the key index instead of rechecking every match)."""
    db.add_all(
        Bib(title=f"共通語の本 第{n}巻", title_reading="きょうつうごのほん", pub_year=1990 + n % 30)
        for n in range(catalog.COUNT_CAP + 50)
    )
    await db.commit()
    new_ids = (await db.scalars(select(Bib.id).where(Bib.title.like("共通語の本%")))).all()
    await catalog.reindex_bibs(db, list(new_ids))
    await db.commit()
    for query in ("共通語", "きょうつうご"):  # a bigram; a kana phrase of several bigrams
        for sort in ("relevance", "newest"):
            page = await catalog.search(db, catalog.parse_params({"q": query, "sort": sort}, []))
            assert page.total == catalog.COUNT_CAP and page.total_capped
            years = [h.pub_year for h in page.hits]
            assert len(page.hits) == catalog.PAGE_SIZE and years == sorted(years, reverse=True)
            assert years[0] == 2019  # the newest year there is
            assert page.newest_instead == (sort == "relevance")
    second = await catalog.search(
        db, catalog.parse_params({"q": "共通語", "sort": "newest", "page": "2"}, [])
    )
    assert {h.id for h in second.hits}.isdisjoint(
        {h.id for h in (await catalog.search(db, catalog.parse_params({"q": "共通語"}, []))).hits}
    )


async def test_postgresql_counts_a_search_and_finds_its_page_of_keys_in_one_statement(
    db: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: the count and, for a query of few matches, its page of keys come in one statement
    (catalog._counted_with_keys), then the titles: two statements where there were three. The page
    is the one ranked on its own; a broad query's matches are not ranked at all (the keys' part of
    the statement is never executed), and its page is walked for as before."""
    if db.bind.dialect.name != "postgresql":
        pytest.skip("SQLite finds the page and the titles in one statement already")
    sent: list[str] = []
    real_sql_rows = catalog.sql_rows

    async def counted(session: AsyncSession, sql: str, params: dict[str, Any] | None = None) -> list[Any]:
        if "set_config" not in sql:  # on a session (not the pages' reader) the plan settings are reset
            sent.append(sql)
        return await real_sql_rows(session, sql, params)

    monkeypatch.setattr(catalog, "_RECENT_THRESHOLD", [None, float("-inf")])
    await catalog.search(db, catalog.parse_params({"q": "の"}, []))  # the index threshold read, if any
    monkeypatch.setattr(catalog, "sql_rows", counted)
    for sort in ("relevance", "newest"):
        sent.clear()
        params = catalog.parse_params({"q": "の", "sort": sort}, [])
        page = await catalog.search(db, params)
        assert len(sent) == 2 and "LEFT JOIN LATERAL" in sent[0]
        query = catalog.key_query(params, "postgresql")
        assert query is not None
        keys = query.relevance if sort == "relevance" else query.newest
        values = {**query.binds, "limit": catalog.PAGE_SIZE, "offset": 0}
        alone = [row.k & catalog.LOW32 for row in await real_sql_rows(db, keys, values)]
        assert [hit.id for hit in page.hits] == alone and 1 < page.total <= catalog.RANK_CANDIDATES
    # Broad (more matches than are ranked): the keys are not looked for in the count's statement.
    query = catalog.key_query(catalog.parse_params({"q": "の"}, []), "postgresql")
    assert query is not None
    statement = catalog._counted_with_keys(
        await catalog._count_sql(db, query, True), query.relevance, query.ranked_by, 1
    )
    values = {**query.binds, "limit": catalog.PAGE_SIZE, "offset": 0}
    plan = "\n".join((await db.execute(text(f"EXPLAIN (ANALYZE, COSTS OFF) {statement}"), values)).scalars())
    assert "Sort (never executed)" in plan
    rows = await real_sql_rows(db, statement, values)
    assert len(rows) == 1 and rows[0].k is None and rows[0].n > 1
    monkeypatch.setattr(catalog, "RANK_CANDIDATES", 1)
    sent.clear()
    page = await catalog.search(db, catalog.parse_params({"q": "の"}, []))
    assert page.newest_instead and len(sent) == 3  # the count, the walk for the newest, the titles
    years = [h.pub_year or 0 for h in page.hits]
    assert years == sorted(years, reverse=True)


async def test_a_long_phrase_among_the_newest_titles_is_counted_exactly(db: AsyncSession) -> None:
    """PostgreSQL counts a common long phrase by walking the newest titles (catalog._walk_count); a
    phrase that is common among them but has fewer matches than the cap is still counted exactly."""
    db.add_all(
        Bib(title=f"みなとまちの記録 {n}", title_reading="みなとまちのきろく", pub_year=2026)
        for n in range(60)
    )
    db.add(Bib(title="みなとまちの地図", title_reading="みなとまちのちず", pub_year=1950))
    await db.commit()
    new_ids = (await db.scalars(select(Bib.id).where(Bib.title.like("みなとまち%")))).all()
    await catalog.reindex_bibs(db, list(new_ids))
    await db.commit()
    page = await catalog.search(db, catalog.parse_params({"q": "みなとまち"}, []))
    assert page.total == 61 and not page.total_capped
    page = await catalog.search(db, catalog.parse_params({"q": "みなとまちのち"}, []))
    assert page.total == 1 and [h.title for h in page.hits] == ["みなとまちの地図"]


async def test_a_sparse_long_phrase_is_counted_among_the_newest_through_their_own_index(
    db: AsyncSession, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: a long phrase too rare among the newest titles to walk for, but common enough,
    is counted past the cap through the newest titles' own GIN index (catalog.build_recent_index)."""
    if db.bind.dialect.name != "postgresql":
        pytest.skip("the newest titles' own GIN index is PostgreSQL's; SQLite's FTS5 counts by rowid")
    engine = sync_engine(database_url)
    try:
        with engine.begin() as connection:
            assert catalog.build_recent_index(connection) is None  # the demo is small: no such index
    finally:
        engine.dispose()
    monkeypatch.setattr(catalog, "PROBE_ROWS", 100)
    monkeypatch.setattr(catalog, "RECENT_ROWS", 150)
    monkeypatch.setattr(catalog, "COUNT_CAP", 20)
    monkeypatch.setattr(catalog, "_RECENT_THRESHOLD", [None, float("-inf")])
    db.add_all(
        Bib(title=f"みなとまちの記録 {n}", title_reading="みなとまちのきろく", pub_year=2025)
        for n in range(60)
    )
    db.add(Bib(title="みなとまちの記録 最新", title_reading="みなとまちのきろく", pub_year=2026))
    db.add_all(Bib(title=f"別の本 {n}", title_reading="べつのほん", pub_year=2026) for n in range(99))
    db.add_all(Bib(title=f"古い港の本 {n}", pub_year=1990) for n in range(5))  # older than the newest 150
    # Words among the newest and the older titles both: the older counted for what the newest lack.
    db.add_all(Bib(title=f"灯台守 {n}", pub_year=2026 if n % 2 else 1990) for n in range(16))  # 8 and 8
    db.add_all(Bib(title=f"岬の{n}", pub_year=2026 if n < 5 else 1990) for n in range(25))
    await db.commit()
    fresh = (await db.scalars(select(Bib.id).where((Bib.pub_year >= 2025) | (Bib.pub_year == 1990)))).all()
    await catalog.reindex_bibs(db, list(fresh))
    await db.commit()
    engine = sync_engine(database_url)
    try:
        with engine.begin() as connection:
            threshold = catalog.build_recent_index(connection)
            connection.execute(text("ANALYZE bib_search"))
    finally:
        engine.dispose()
    assert threshold is not None and threshold >> 32 == 2025
    query = catalog.key_query(catalog.parse_params({"q": "みなとまち"}, []), "postgresql")
    assert query is not None and query.walked
    assert await catalog._count(db, query, True) == 21  # past the cap among the newest 150
    assert catalog._RECENT_THRESHOLD[0] == threshold
    # A single word, as any query with terms: among the newest first, then the older for the rest.
    for text_, expected in (
        ("記録", 21),
        ("古い港", 5),
        ("無い港", 0),
        ("灯台", 16),
        ("岬", 21),
    ):
        word = catalog.key_query(catalog.parse_params({"q": text_}, []), "postgresql")
        assert word is not None and not word.walked, text_
        assert await catalog._count(db, word, True) == expected, text_
    page = await catalog.search(db, catalog.parse_params({"q": "みなとまち"}, []))
    assert page.total == 20 and page.total_capped and page.hits[0].title == "みなとまちの記録 最新"

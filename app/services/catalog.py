"""The catalogue: search, the detail page's data, and keeping the search index in step with bibs.

Search stays behind search(): on SQLite it uses the FTS5 table `bib_fts` (see search_text.py
for how Japanese is indexed); on other databases a LIKE fallback keeps the app working until
the PostgreSQL index lands. Index rows use rowid = pub_year << 32 | bib id, so "newest first"
is the index's own order and needs no sort. Relevance ranks by bm25 when at most 1 000 titles
match and shows a broader result newest first: bm25 reads statistics of every match, which made a
common kana reading cost 27 ms at a million titles (bench/search.py; docs/performance-notes.md).
"""

from __future__ import annotations

import datetime as dt
import re
import time
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, and_, bindparam, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from app.i18n import N_
from app.models import MATERIAL_TYPES, Bib, Branch, Hold, Item, Loan, Series
from app.reads import Read, dialect_name, one_transaction, planned_each_run, sql_rows
from app.services.search_text import (
    bigram_text,
    char_text,
    term_expression,
    tsquery_expression,
    tsvector_literal,
)

PAGE_SIZE = 20
MAX_PAGE = 500
MAX_QUERY = 200
RANK_CANDIDATES = 1000
COUNT_CAP = 1000
SORTS = ("relevance", "newest")
LOW32 = 0xFFFFFFFF

MATERIAL_LABELS = {
    "book": N_("Book"),
    "magazine": N_("Magazine"),
    "audiovisual": N_("Audio-visual"),
    "serial": N_("Serial"),
    "other": N_("Other"),
}


class SearchError(ValueError):
    """A search parameter is out of range; `field` names it for the form."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


SEARCH_MESSAGES = {
    "year": N_("Years are four digits, like 2020, and the first must not be after the second."),
    "isbn": N_("An ISBN has 10 or 13 digits (hyphens allowed)."),
    "sort": N_("Unknown sort order."),
    "material_type": N_("Unknown material type."),
    "branch": N_("Unknown library."),
    "page": N_("That page does not exist."),
}


@dataclass(frozen=True)
class SearchParams:
    q: str = ""
    title: str = ""
    author: str = ""
    publisher: str = ""
    subject: str = ""
    isbn: str = ""
    year_from: int | None = None
    year_to: int | None = None
    material_type: str = ""
    branch_id: int | None = None
    sort: str = "relevance"
    page: int = 1

    @property
    def is_empty(self) -> bool:
        return not any(
            (
                self.q,
                self.title,
                self.author,
                self.publisher,
                self.subject,
                self.isbn,
                self.year_from,
                self.year_to,
                self.material_type,
                self.branch_id,
            )
        )

    @property
    def is_advanced(self) -> bool:
        return any(
            (
                self.title,
                self.author,
                self.publisher,
                self.subject,
                self.isbn,
                self.year_from,
                self.year_to,
                self.material_type,
                self.branch_id,
            )
        )


@dataclass(slots=True)  # a row of a page: not frozen, which costs ~3 µs per row to build
class Availability:
    items: int
    loanable_items: int
    on_shelf: int
    shelf_branches: int
    waiting: int


@dataclass(slots=True)  # a row of a page: not frozen, which costs ~3 µs per row to build
class SearchHit:
    id: int
    title: str
    authors: str
    publisher: str
    pub_year: int | None
    material_type: str
    loanable: bool
    series_volume: int | None
    availability: Availability
    favourite: bool = False  # among the patron's favourites (searched for a patron)


@dataclass(frozen=True)
class SearchPage:
    params: SearchParams
    hits: list[SearchHit]
    total: int
    total_capped: bool
    newest_instead: bool = False  # relevance was asked, but the result set is too broad to rank

    @property
    def page(self) -> int:
        return self.params.page

    @property
    def pages(self) -> int:
        return max(1, min(MAX_PAGE, -(-self.total // PAGE_SIZE)))

    @property
    def query(self) -> str:
        return self.params.q


def clean_text(value: str | None, limit: int = MAX_QUERY) -> str:
    """NFKC and single spaces; capped so a 10 000-character query costs nothing."""
    return " ".join(unicodedata.normalize("NFKC", value or "")[: limit * 2].split())[:limit]


def normalize_isbn(value: str) -> str | None:
    digits = re.sub(r"[\s-]", "", unicodedata.normalize("NFKC", value)).upper()
    return digits if re.fullmatch(r"\d{13}|\d{9}[\dX]", digits) else None


def _year(value: str | None) -> int | None:
    if value is None or not value.strip():
        return None
    text_value = unicodedata.normalize("NFKC", value).strip()
    if not re.fullmatch(r"\d{4}", text_value):
        raise SearchError("year", SEARCH_MESSAGES["year"])
    return int(text_value)


def parse_params(raw: dict[str, str], branch_ids: Iterable[int]) -> SearchParams:
    """Turn query-string values into SearchParams, or raise SearchError naming the bad one."""
    sort = raw.get("sort") or "relevance"
    if sort not in SORTS:
        raise SearchError("sort", SEARCH_MESSAGES["sort"])
    material = raw.get("material_type") or ""
    if material and material not in MATERIAL_TYPES:
        raise SearchError("material_type", SEARCH_MESSAGES["material_type"])
    branch_raw = unicodedata.normalize("NFKC", raw.get("branch") or "").strip()
    branch_id = None
    if branch_raw:
        if not branch_raw.isdigit() or int(branch_raw) not in set(branch_ids):
            raise SearchError("branch", SEARCH_MESSAGES["branch"])
        branch_id = int(branch_raw)
    page_raw = unicodedata.normalize("NFKC", raw.get("page") or "1").strip()
    if not page_raw.isdigit() or not 1 <= int(page_raw) <= MAX_PAGE:
        raise SearchError("page", SEARCH_MESSAGES["page"])
    year_from, year_to = _year(raw.get("year_from")), _year(raw.get("year_to"))
    if year_from and year_to and year_from > year_to:
        raise SearchError("year", SEARCH_MESSAGES["year"])
    isbn = clean_text(raw.get("isbn"), 20)
    if isbn and normalize_isbn(isbn) is None:
        raise SearchError("isbn", SEARCH_MESSAGES["isbn"])
    return SearchParams(
        q=clean_text(raw.get("q")),
        title=clean_text(raw.get("title")),
        author=clean_text(raw.get("author")),
        publisher=clean_text(raw.get("publisher")),
        subject=clean_text(raw.get("subject")),
        isbn=isbn,
        year_from=year_from,
        year_to=year_to,
        material_type=material,
        branch_id=branch_id,
        sort=sort,
        page=int(page_raw),
    )


# ---------------------------------------------------------------- index maintenance


def search_key(pub_year: int | None, bib_id: int) -> int:
    return (max(0, min(pub_year or 0, 9999)) << 32) | bib_id


def index_values(row: dict) -> dict:  # type: ignore[type-arg]
    title_fields = (
        row["title"],
        row["title_reading"],
        row["series_title"] or "",
        row["series_reading"] or "",
    )
    author_fields = (row["authors"], row["authors_reading"])
    return {
        "rowid": search_key(row["pub_year"], row["id"]),
        "title": bigram_text(*title_fields),
        "author": bigram_text(*author_fields),
        "publisher": bigram_text(row["publisher"]),
        "subject": bigram_text(row["subjects"], row["isbn"] or ""),
        "chars": char_text(*title_fields, *author_fields, row["publisher"], row["subjects"]),
    }


_INDEX_SOURCE = """
SELECT b.id, b.title, b.title_reading, b.authors, b.authors_reading, b.publisher, b.subjects, b.isbn,
       b.pub_year, b.search_key, s.title AS series_title, s.title_reading AS series_reading
FROM bibs b LEFT JOIN series s ON s.id = b.series_id
"""
_INSERT = (
    "INSERT INTO bib_fts(rowid, title, author, publisher, subject, chars) "
    "VALUES (:rowid, :title, :author, :publisher, :subject, :chars)"
)


def _gin_index(name: str, table: str = "bib_search", where: str = "") -> str:
    """The GIN index statement. No pending list (fastupdate off): a pending list is scanned
    linearly by every query until VACUUM merges it, which made searches ten times slower after an
    import."""
    return f"CREATE INDEX {name} ON {table} USING gin (doc) WITH (fastupdate = off)" + (
        f" WHERE {where}" if where else ""
    )


PG_SEARCH_INDEX = _gin_index("ix_bib_search_doc")
_PG_INSERT = "INSERT INTO {table} (key, doc) VALUES (:rowid, CAST(:doc AS tsvector))"
# The newest titles get a GIN index of their own (build_recent_index): counting a common kana reading
# to 1 001 there reads a tenth of the posting lists the whole index has.
RECENT_ROWS = 100_000
RECENT_INDEX = "ix_bib_search_recent"


def build_recent_index(conn: Connection) -> int | None:
    """PostgreSQL: (re)build the GIN index over the newest RECENT_ROWS keys; its lowest key, or None
    when the catalogue is small enough for the whole index (under twice that many titles)."""
    conn.execute(text(f"DROP INDEX IF EXISTS {RECENT_INDEX}"))
    threshold = conn.scalar(
        text(f"SELECT key FROM bib_search ORDER BY key DESC OFFSET {RECENT_ROWS} LIMIT 1")
    )
    if (
        threshold is None
        or conn.scalar(text(f"SELECT 1 FROM bib_search OFFSET {2 * RECENT_ROWS} LIMIT 1")) is None
    ):
        return None
    conn.execute(text(_gin_index(RECENT_INDEX, where=f"key >= {int(threshold)}")))
    return int(threshold)


def _write_index(
    conn: Connection,
    rows: Sequence[dict],  # type: ignore[type-arg]
    pg_table: str = "bib_search",
    fresh: bool = False,
) -> None:
    """Index `rows` (from _INDEX_SOURCE), replacing their old entries unless the table is `fresh`
    (holds none of them), and record each bib's key."""
    postgres = conn.dialect.name == "postgresql"
    stale = [] if fresh else [{"k": r["search_key"]} for r in rows if r["search_key"] is not None]
    if stale:
        table, key = (pg_table, "key") if postgres else ("bib_fts", "rowid")
        conn.execute(text(f"DELETE FROM {table} WHERE {key} = :k"), stale)
    values = [index_values(r) for r in rows]
    if values:
        if postgres:
            conn.execute(
                text(_PG_INSERT.format(table=pg_table)),
                [{"rowid": v["rowid"], "doc": tsvector_literal(v)} for v in values],
            )
        else:
            conn.execute(text(_INSERT), values)
        conn.execute(
            text("UPDATE bibs SET search_key = :rowid WHERE id = :id"),
            [{"rowid": v["rowid"], "id": r["id"]} for v, r in zip(values, rows, strict=True)],
        )


def reindex_all_sync(conn: Connection, batch: int = 5000) -> int:
    """Rebuild the whole index (migrations, `python -m app reindex`)."""
    if conn.dialect.name == "postgresql":
        return _reindex_all_postgres(conn, batch)
    conn.execute(text("DELETE FROM bib_fts"))
    conn.execute(text("UPDATE bibs SET search_key = NULL"))
    last, total = 0, 0
    while True:
        rows = [
            dict(r._mapping)
            for r in conn.execute(
                text(_INDEX_SOURCE + " WHERE b.id > :last ORDER BY b.id LIMIT :n"), {"last": last, "n": batch}
            )
        ]
        if not rows:
            # Merge the index's segments once after a bulk build: later reads touch fewer pages.
            conn.execute(text("INSERT INTO bib_fts(bib_fts) VALUES ('optimize')"))
            return total
        _write_index(conn, rows)
        last, total = rows[-1]["id"], total + len(rows)


def _reindex_all_postgres(conn: Connection, batch: int) -> int:
    """PostgreSQL: a new table is filled in key order, indexed, then put in place of the old one.

    In key order, the table holds the rows as a broad search walks them (newest first, down the key
    index): a page of results reads a few neighbouring table pages, not one page per title tested
    (1 M titles, a word in one title in 275: 12 → 3 ms). Searches read the old table until the
    swap at commit, and no dead rows are left behind."""
    conn.execute(text("DROP TABLE IF EXISTS bib_search_new"))
    conn.execute(text("CREATE TABLE bib_search_new (key BIGINT NOT NULL, doc TSVECTOR NOT NULL)"))
    ids = [
        row[0]
        for row in conn.execute(
            text("SELECT id FROM bibs ORDER BY least(greatest(coalesce(pub_year, 0), 0), 9999), id")
        )
    ]
    for start in range(0, len(ids), batch):
        chunk = ",".join(str(int(i)) for i in ids[start : start + batch])
        rows = [dict(r._mapping) for r in conn.execute(text(_INDEX_SOURCE + f" WHERE b.id IN ({chunk})"))]
        rows.sort(key=lambda r: search_key(r["pub_year"], r["id"]))
        _write_index(conn, rows, pg_table="bib_search_new", fresh=True)
    # GIN builds in memory, spilling to disk beyond this (PostgreSQL's default is 64 MB).
    conn.execute(text("SET LOCAL maintenance_work_mem = '512MB'"))
    conn.execute(text("ALTER TABLE bib_search_new ADD CONSTRAINT bib_search_new_pkey PRIMARY KEY (key)"))
    conn.execute(text(_gin_index("ix_bib_search_new_doc", "bib_search_new")))
    conn.execute(text("DROP TABLE bib_search"))
    conn.execute(text("ALTER TABLE bib_search_new RENAME TO bib_search"))
    conn.execute(text("ALTER TABLE bib_search RENAME CONSTRAINT bib_search_new_pkey TO bib_search_pkey"))
    conn.execute(text("ALTER INDEX ix_bib_search_new_doc RENAME TO ix_bib_search_doc"))
    build_recent_index(conn)
    conn.execute(text("ANALYZE bib_search"))  # fresh statistics for the planner
    return len(ids)


async def reindex_bibs(session: AsyncSession, bib_ids: Sequence[int]) -> None:
    """Bring these bibs' index rows in step with the bibs table (call after inserts or updates)."""
    if not bib_ids:
        return
    for start in range(0, len(bib_ids), 500):
        chunk = list(bib_ids[start : start + 500])
        result = await session.execute(
            text(_INDEX_SOURCE + " WHERE b.id IN (" + ",".join(str(int(i)) for i in chunk) + ")")
        )
        rows = [dict(r._mapping) for r in result]

        def write(sync_session: Session, rows: list[dict] = rows) -> None:  # type: ignore[type-arg]
            _write_index(sync_session.connection(), rows)

        await session.run_sync(write)


# ---------------------------------------------------------------- search


NOTHING = "\x00nothing"  # a match expression that no index row can satisfy


def _match_expressions(params: SearchParams, dialect: str = "sqlite") -> tuple[str | None, str | None]:
    """The search's match expression, and PostgreSQL's expression for ts_rank (Query.rank)."""
    build = tsquery_expression if dialect == "postgresql" else term_expression
    queries = [build(params.q)]
    for column, value in (
        ("title", params.title),
        ("author", params.author),
        ("publisher", params.publisher),
        ("subject", params.subject),
    ):
        if value:
            query = build(value, column)
            if query.expression is None:
                return NOTHING, NOTHING  # a field was filled but holds nothing searchable: no results
            queries.append(query)
    found = [q for q in queries if q.expression]
    if not found:
        return None, None
    joiner = " & " if dialect == "postgresql" else " AND "
    return (
        joiner.join(f"({q.expression})" for q in found),
        joiner.join(f"({q.rank or q.expression})" for q in found),
    )


def _filters(params: SearchParams, key: str) -> tuple[list[str], dict[str, object]]:
    clauses: list[str] = []
    binds: dict[str, object] = {}
    if params.year_from:
        clauses.append(f"{key} >= :kmin")
        binds["kmin"] = params.year_from << 32
    if params.year_to:
        clauses.append(f"{key} <= :kmax")
        binds["kmax"] = (params.year_to << 32) | LOW32
    bib_conditions: list[str] = []
    if params.material_type:
        bib_conditions.append("b.material_type = :material")
        binds["material"] = params.material_type
    isbn = normalize_isbn(params.isbn) if params.isbn else None
    if isbn:
        bib_conditions.append("b.isbn = :isbn")
        binds["isbn"] = isbn
    if bib_conditions:
        clauses.append(f"({key} & {LOW32}) IN (SELECT b.id FROM bibs b WHERE {' AND '.join(bib_conditions)})")
    if params.branch_id:
        clauses.append(
            f"({key} & {LOW32}) IN (SELECT i.bib_id FROM items i WHERE i.status = 'on_shelf' AND i.loanable "
            "AND coalesce(i.location_branch_id, i.branch_id) = :branch)"
        )
        binds["branch"] = params.branch_id
    return clauses, binds


# As migrations 0002 and 0013 leave it: prefix indexes make an English prefix query ("garden"*)
# read only the page it shows, where without them FTS5 merges every matching word's list first.
FTS_DEFINITION = (
    "CREATE VIRTUAL TABLE bib_fts USING fts5("
    "title, author, publisher, subject, chars, "
    "tokenize = 'unicode61 remove_diacritics 2', detail = 'full', prefix = '3 4 5 6 7 8')"
)


@dataclass(frozen=True)
class KeyQuery:
    """The statements that find a search's keys (pub_year << 32 | bib id) in bib_fts, bibs and items."""

    base: str  # every matching key, unordered
    newest: str  # a page of keys, newest first (:limit, :offset)
    relevance: str  # a page of keys, best first (:limit, :offset), with its rank as r where it has one
    binds: dict[str, object]
    has_terms: bool
    walked: str = ""  # PostgreSQL, long phrases: `base` over only the newest {rows} keys (_walk_count)
    ranked_by: str = "k DESC"  # the order of `relevance` by its columns (k, r), for a query around it


# A phrase of three bigrams or more (Japanese of four characters or more, a kana reading): PostgreSQL
# estimates it as if its bigrams were independent, far below what a common reading matches.
_LONG_PHRASE = re.compile(r"\([^()]*<->[^()]*<->[^()]*\)")

# ts_rank weights in PostgreSQL's order {D, C, B, A}: subject, publisher, author, title (as bm25 below).
_PG_RANK_WEIGHTS = "{0.2, 0.1, 0.5, 1.0}"


def key_query(params: SearchParams, dialect: str = "sqlite") -> KeyQuery | None:
    """SQL for a search, or None when it can match nothing. Also run by the new-arrival digest.

    SQLite: FTS5 (bib_fts, rowid = key). PostgreSQL: a GIN-indexed tsvector of the same tokens
    (bib_search, see search_text.tsvector_literal). Filters and ordering are the same SQL on both.
    """
    if params.is_empty:
        return None
    match, rank = _match_expressions(params, dialect)
    if match == NOTHING or (match is None and not params.is_advanced):
        return None
    if match is not None:
        if dialect == "postgresql":
            clauses, binds = _filters(params, "key")
            where = " AND ".join(["doc @@ CAST(:match AS tsquery)", *clauses])
            binds["match"] = match
            binds["rank"] = rank
            base = f"SELECT key AS k FROM bib_search WHERE {where}"
            return KeyQuery(
                base,
                f"{base} ORDER BY key DESC LIMIT :limit OFFSET :offset",
                f"SELECT key AS k, ts_rank('{_PG_RANK_WEIGHTS}', doc, CAST(:rank AS tsquery)) AS r "
                f"FROM bib_search WHERE {where} ORDER BY r DESC, k DESC LIMIT :limit OFFSET :offset",
                binds,
                True,
                "SELECT key AS k FROM (SELECT key, doc FROM bib_search ORDER BY key DESC LIMIT {rows}) "
                f"AS bib_search WHERE {where}"
                if _LONG_PHRASE.search(match)
                else "",
                "r DESC, k DESC",
            )
        clauses, binds = _filters(params, "rowid")
        where = " AND ".join(["bib_fts MATCH :match", *clauses])
        binds["match"] = match
        base = f"SELECT rowid AS k FROM bib_fts WHERE {where}"
        # bm25 reads every match's statistics whatever the LIMIT, so it ranks only result sets of
        # up to RANK_CANDIDATES; a broader query is shown newest first (measured in bench/search.py).
        return KeyQuery(
            base,
            f"{base} ORDER BY rowid DESC LIMIT :limit OFFSET :offset",
            "SELECT rowid AS k, bm25(bib_fts, 10.0, 5.0, 1.0, 2.0, 0.5) AS r FROM bib_fts "
            f"WHERE {where} ORDER BY r, k DESC LIMIT :limit OFFSET :offset",
            binds,
            True,
            ranked_by="r, k DESC",
        )
    clauses, binds = _filters(params, "k")
    inner = "SELECT ((CAST(coalesce(pub_year, 0) AS BIGINT) << 32) | id) AS k FROM bibs"
    base = f"SELECT k FROM ({inner}) AS keyed WHERE {' AND '.join(clauses)}"
    newest = f"{base} ORDER BY k DESC LIMIT :limit OFFSET :offset"
    return KeyQuery(base, newest, newest, binds, False)


# Many matches on PostgreSQL: walk the key index (see _page).
_PG_WALK_HINTS = {"enable_bitmapscan": "off", "enable_seqscan": "off"}
_PG_USUAL_PLANS = (
    "SELECT set_config('plan_cache_mode', 'auto', true), set_config('enable_bitmapscan', 'on', true), "
    "set_config('enable_seqscan', 'on', true)"
)


PROBE_ROWS = 2000
WALK_ROWS = (10_000, 25_000, 50_000)  # a few fixed bounds, so each is one statement text


async def _walk_count(session: AsyncSession, query: KeyQuery) -> int | None:
    """PostgreSQL, a long phrase: more than COUNT_CAP matches found among the newest keys, or None.

    Through GIN, a common kana reading (85 000 of 1 M titles) is the intersection of four long
    bigram lists, each row then rechecked for the phrase: ~50 ms before the count can stop at 1 001.
    Testing the newest titles one by one finds 1 001 after ~12 000 rows (~5 ms). The newest 2 000
    are tested first (~1 ms): with one match in forty or more the walk goes on, bounded by twice
    the rows that rate needs; None (count through the index, as for any other query) when the
    sample is sparser or the walk ends short of 1 001. The count is exact either way.
    """
    probe = f"SELECT count(*) AS n FROM ({query.walked.format(rows=PROBE_ROWS)}) AS probe"
    sampled = (await sql_rows(session, probe, query.binds))[0].n
    if sampled * 40 < PROBE_ROWS:  # too sparse to walk for: counted as any other query (_count)
        return None
    needed = 2 * (COUNT_CAP + 1) * PROBE_ROWS // sampled
    rows = next((bound for bound in WALK_ROWS if bound >= needed), WALK_ROWS[-1])
    walk = f"SELECT count(*) AS n FROM ({query.walked.format(rows=rows)} LIMIT {COUNT_CAP + 1}) AS capped"
    counted = (await sql_rows(session, walk, query.binds))[0].n
    return counted if counted > COUNT_CAP else None


# [lowest key of RECENT_INDEX or None, read at (monotonic s); -inf: never read]. Not -1: the
# monotonic clock counts from boot, so for a machine's first ten minutes that meant "fresh".
_RECENT_THRESHOLD: list[Any] = [None, float("-inf")]
_RECENT_TTL = 600.0
_RECENT_PREDICATE = (
    "SELECT pg_get_expr(i.indpred, i.indrelid) AS predicate FROM pg_index i "
    f"JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = '{RECENT_INDEX}'"
)


async def _recent_threshold(session: AsyncSession) -> int | None:
    """The lowest key of RECENT_INDEX (None: there is none, under 200 000 titles), read from its
    definition every ten minutes: a stale value only means the whole index counts meanwhile."""
    threshold, read_at = _RECENT_THRESHOLD
    if time.monotonic() - read_at > _RECENT_TTL:
        rows = await sql_rows(session, _RECENT_PREDICATE)
        found = re.search(r"key >= '?(\d+)", rows[0].predicate) if rows else None
        threshold = int(found.group(1)) if found else None
        _RECENT_THRESHOLD[:] = [threshold, time.monotonic()]
    return None if threshold is None else int(threshold)


async def _count_sql(session: AsyncSession, query: KeyQuery, postgres: bool) -> str:
    """The statement counting the matches to COUNT_CAP + 1, as `n` (values: `query.binds`).

    PostgreSQL, where the newest titles have a GIN index of their own: among them first. A common
    word's matches there are a tenth of its matches in the whole index, and a bitmap scan reads
    every match before the count can stop at 1 001: an English word in one title in forty at 1 M
    titles, 12–18 → 2.5–3 ms (a common reading, 17 → 5 ms). Fewer than 1 001 there: the older
    titles are counted for the rest, in the same statement (PostgreSQL runs the ELSE's subquery
    only when reached), so a word with 344 matches among the newest reads 657 older rows, not 1 001
    of all (a medium word at 1 M titles: 7.3 → 6.4 ms)."""
    cap = COUNT_CAP + 1
    threshold = await _recent_threshold(session) if postgres and query.has_terms else None
    if threshold is None:
        sql = f"SELECT count(*) AS n FROM ({query.base} LIMIT {cap}) AS capped"
    else:
        newest = (
            f"SELECT count(*) AS n FROM ({query.base} AND key >= {int(threshold)} LIMIT {cap}) AS counted"
        )
        older = (
            f"SELECT count(*) FROM ({query.base} AND key < {int(threshold)} LIMIT {cap} - newest.n) AS older"
        )
        sql = (
            f"SELECT CASE WHEN newest.n >= {cap} THEN {cap} ELSE newest.n + ({older}) END AS n "
            f"FROM ({newest}) AS newest"
        )
    return sql


async def _count(session: AsyncSession, query: KeyQuery, postgres: bool) -> int:
    """The matches, counted to COUNT_CAP + 1 (_count_sql)."""
    return int((await sql_rows(session, await _count_sql(session, query, postgres), query.binds))[0].n)


@lru_cache(maxsize=256)  # a bounded set of shapes, as _hits_sql
def _counted_with_keys(count_sql: str, keys: str, order: str, candidates: int) -> str:
    """PostgreSQL: the count (`n`) and, where it is at most `candidates`, the page of `keys` in
    `order`, in one statement: a row for each key, each carrying the count, or one row with no key.
    The count reaches the keys' subquery as its LIMIT, 0 for a broad query: PostgreSQL's Limit then
    never runs what is under it, so a broad query's matches are not ranked (EXPLAIN ANALYZE: "never
    executed"). A WHERE on the count would not do: the planner makes it a join filter, tested on the
    keys after they were all found and ranked. OFFSET 0 keeps the count a subquery of its own: pulled
    up, its expression was copied into the LIMIT, and the older titles were counted twice."""
    return (
        f"SELECT c.n, p.* FROM ({count_sql} OFFSET 0) AS c LEFT JOIN LATERAL (SELECT * FROM ({keys}) AS q "
        f"LIMIT CASE WHEN c.n <= {int(candidates)} THEN NULL ELSE 0 END) AS p ON true ORDER BY {order}"
    )


async def search(session: AsyncSession, params: SearchParams, patron_id: int | None = None) -> SearchPage:
    """One page of results with availability (and, for a patron, which are among their
    favourites); the only entry point pages use."""
    if params.is_empty:
        return SearchPage(params, [], 0, False)
    dialect = dialect_name(session)
    query = key_query(params, dialect)
    if query is None:
        return SearchPage(params, [], 0, False)
    postgres = dialect == "postgresql"
    # On PostgreSQL, plan the count and the page's keys for this query's words: one generic plan
    # cannot tell a word in one title in eight (a seq scan stops after 1 001 matches: 4 ms) from a
    # rare one (the GIN index: 0.4 ms), and took the index for both (45 ms for the first). Planning
    # anew costs ~0.2 ms.
    async with planned_each_run(session) as hints_end_here:
        counted, broad, found = await _page(session, params, query, postgres, patron_id)
    if postgres:
        if not hints_end_here:  # a session's transaction goes on: what follows plans as usual
            await sql_rows(session, _PG_USUAL_PLANS)
        # The titles by their keys, in a statement of its own, planned once: planned with the
        # keys' statement at every run it cost more (~0.4 ms) than the round trip it saved.
        if found:
            by_keys: dict[str, Any] = {"keys": [row.k for row in found]}
            if patron_id is not None:
                by_keys["patron"] = patron_id
            found = await sql_rows(session, _hits_sql(True, _BY_KEYS, "pos", patron_id is not None), by_keys)
    return SearchPage(
        params,
        [_hit(row) for row in found],
        min(counted, COUNT_CAP),
        counted > COUNT_CAP,
        newest_instead=params.sort == "relevance" and broad and query.has_terms,
    )


async def _page(
    session: AsyncSession, params: SearchParams, query: KeyQuery, postgres: bool, patron_id: int | None
) -> tuple[int, bool, list[Any]]:
    """The matches counted (to COUNT_CAP + 1), whether they are many, and the page: on SQLite its
    rows (_HITS_SQL) in order, on PostgreSQL its keys (k) in order."""
    values = {**query.binds, "limit": PAGE_SIZE, "offset": (params.page - 1) * PAGE_SIZE}
    counted = await _walk_count(session, query) if query.walked else None
    if counted is None:
        if postgres:
            # The count and, for the few matches most searches have, their page of keys: one round
            # trip where there were two (the search page on PostgreSQL sends three statements, not
            # four). A broad query's keys are walked for below.
            keys, order = _page_keys(params, query, broad=False)
            count_sql = await _count_sql(session, query, postgres)
            statement = _counted_with_keys(count_sql, keys, order, RANK_CANDIDATES)
            rows = await sql_rows(session, statement, values)
            counted = int(rows[0].n)
            if counted <= RANK_CANDIDATES:
                return counted, False, [row for row in rows if row.k is not None]
        else:
            counted = await _count(session, query, postgres)
    broad = counted > RANK_CANDIDATES
    keys, order = _page_keys(params, query, broad)
    if postgres:  # and broad: a page of few matches was returned with their count above
        # Many matches: walking the key index from the newest title and testing each row finds a page
        # after a few hundred rows, where a bitmap scan would recheck every match (a kana phrase at
        # 1 M titles: 1.2 s → 2 ms) and a seq scan would test every row before sorting. PostgreSQL
        # cannot estimate a phrase's selectivity (it took a common reading for a rare one), so it
        # is told.
        async with one_transaction(session, _PG_WALK_HINTS):
            return counted, broad, await sql_rows(session, keys, values)
    if patron_id is not None:
        values["patron"] = patron_id
    page_sql = _hits_sql(False, f"({keys}) AS page", order, patron_id is not None)
    return counted, broad, await sql_rows(session, page_sql, values)


def _page_keys(params: SearchParams, query: KeyQuery, broad: bool) -> tuple[str, str]:
    """The statement of the page's keys and their order: best first where the patron asked for
    relevance and the matches are few enough to rank (not `broad`), newest first otherwise."""
    if params.sort == "relevance" and not broad:
        return query.relevance, query.ranked_by
    return query.newest, "k DESC"


@lru_cache(maxsize=256)  # a bounded set of shapes; the same text object keeps its hash for sql_rows
def _hits_sql(postgres: bool, page: str, order: str, favourite: bool) -> str:
    """_HITS_SQL around `page` (a source of keys k, and r where ranked), in `order` of its columns
    (no title column is named k, r or pos)."""
    return _HITS_SQL.format(
        least="least" if postgres else "min",
        favourite=_FAVOURITE if favourite else "",
        page=page,
        low32=LOW32,
        order=order,
    )


# A page's titles with their availability, by a page of keys (k, and r where ranked) in its order.
# On SQLite the keys come from the search's own statement (`newest` or `relevance`) inside this
# one: one statement where the keys and then the titles by a list of ids were two (the SQL ~10 %
# quicker, the page ~1 % fewer instructions). On PostgreSQL they are the keys' statement's answer,
# as an array (_BY_KEYS). For a patron, the `favourite` column says which are among their
# favourites (a statement of its own before).
# The four counts of a title's copies come from one look at its items, packed into one integer (16
# bits each, capped so none spills into the next) and unpacked in _hit: four correlated subqueries
# walked the title's items four times (the statement cost 1.0 M instructions a page of 20, this one
# ~0.78 M; bench/instructions.py, measured on SQLite).
_HITS_SQL = """
SELECT b.id, b.title, b.authors, b.publisher, b.pub_year, b.material_type, b.loanable, b.series_volume,
  (SELECT {least}(count(*), 65535)
      | ({least}(count(*) FILTER (WHERE i.loanable), 65535) << 16)
      | ({least}(count(*) FILTER (WHERE i.loanable AND i.status = 'on_shelf'), 65535) << 32)
      | ({least}(count(DISTINCT coalesce(i.location_branch_id, i.branch_id))
                 FILTER (WHERE i.loanable AND i.status = 'on_shelf'), 32767) << 48)
     FROM items i WHERE i.bib_id = b.id) AS copies,
  (SELECT count(*) FROM holds h WHERE h.bib_id = b.id AND h.status = 'waiting') AS waiting{favourite}
FROM {page} JOIN bibs b ON b.id = (page.k & {low32})
ORDER BY {order}
"""
# PostgreSQL: the page's keys as one array value, in their order.
_BY_KEYS = "unnest(CAST(:keys AS BIGINT[])) WITH ORDINALITY AS page(k, pos)"
_FAVOURITE = (
    ",\n  EXISTS (SELECT 1 FROM favourites f WHERE f.patron_id = :patron AND f.bib_id = b.id) AS favourite"
)


def _hit(r: Any) -> SearchHit:
    copies = r.copies
    return SearchHit(
        r.id,
        r.title,
        r.authors,
        r.publisher,
        r.pub_year,
        r.material_type,
        bool(r.loanable),
        r.series_volume,
        Availability(
            copies & 0xFFFF, (copies >> 16) & 0xFFFF, (copies >> 32) & 0xFFFF, copies >> 48, r.waiting
        ),
        bool(getattr(r, "favourite", False)),
    )


# ---------------------------------------------------------------- detail


@dataclass(frozen=True)
class Holding:
    barcode: str
    branch_id: int
    branch_ja: str
    branch_en: str
    shelfmark: str
    status: str  # on_shelf / on_loan / on_hold_shelf / in_transit / missing
    due_on: dt.date | None
    loanable: bool


@dataclass(frozen=True)
class SeriesVolume:
    id: int
    title: str
    volume: int | None


@dataclass
class BibDetail:
    bib: Any  # a row with every column of bibs, by name (bib.title, bib.loanable, ...)
    series_title: str | None
    volumes: list[SeriesVolume] = field(default_factory=list)
    holdings: list[Holding] = field(default_factory=list)
    waiting: int = 0

    @property
    def reservable(self) -> bool:
        return bool(self.bib.loanable) and any(h.loanable for h in self.holdings)


class BibNotFound(LookupError):
    """No bib with that id."""


_DETAIL = Read(
    lambda: (
        select(*Bib.__table__.columns, Series.title.label("series_title"))
        .outerjoin(Series, Series.id == Bib.series_id)
        .where(Bib.id == bindparam("bib_id"))
    )
)
_VOLUMES = Read(
    lambda: (
        select(Bib.id, Bib.title, Bib.series_volume)
        .where(Bib.series_id == bindparam("series_id"))
        .order_by(Bib.series_volume, Bib.id)
    )
)
_HOLDINGS = Read(
    lambda: (
        select(
            Item.barcode,
            Item.branch_id,
            Branch.name_ja,
            Branch.name_en,
            Item.shelfmark,
            Item.status,
            Loan.due_on,
            Item.loanable,
            select(func.count())
            .where(and_(Hold.bib_id == bindparam("bib_id"), Hold.status == "waiting"))
            .scalar_subquery()
            .label("waiting"),
        )
        .join(Branch, Branch.id == func.coalesce(Item.location_branch_id, Item.branch_id))
        .outerjoin(Loan, and_(Loan.item_id == Item.id, Loan.returned_on.is_(None)))
        .where(Item.bib_id == bindparam("bib_id"))
        .order_by(Branch.id, Item.barcode)
    )
)


async def get_detail(session: AsyncSession, bib_id: int) -> BibDetail:
    """The detail page's data in three compiled reads: the bib, its series' volumes, its copies."""
    bib = await _DETAIL.first(session, bib_id=bib_id)
    if bib is None:
        raise BibNotFound(bib_id)
    detail = BibDetail(bib, bib.series_title)
    if bib.series_id is not None:
        detail.volumes = [SeriesVolume(*r) for r in await _VOLUMES.all(session, series_id=bib.series_id)]
    for r in await _HOLDINGS.all(session, bib_id=bib_id):
        detail.holdings.append(
            Holding(
                r.barcode,
                r.branch_id,
                r.name_ja,
                r.name_en,
                r.shelfmark,
                r.status,
                r.due_on,
                bool(r.loanable),
            )
        )
        detail.waiting = r.waiting
    return detail


@dataclass(frozen=True)
class BranchChoice:
    id: int
    name_ja: str
    name_en: str


_BRANCHES = Read(lambda: select(Branch.id, Branch.name_ja, Branch.name_en).order_by(Branch.id))


async def branches(session: AsyncSession) -> list[BranchChoice]:
    return [BranchChoice(*row) for row in await _BRANCHES.all(session)]

"""Catalogue search benchmark: catalog.search() in-process against synthetic catalogues of growing size.

It measures the service function the search page calls, on the same inline-read engine the web
pages use, so HTTP and templates do not blur what the index costs. Each size gets a fresh migrated
file filled by bench/generate.py. Every query kind cycles through about twenty different queries so
SQLite's page cache is warm (as in production) but no single result set is replayed. The targets
(p95 ≤ 20 ms at 1 M bibs, 1 M at most 3× the 10 k cost) are printed, not enforced: machines differ.

    python -m bench.search [--sizes 10000,100000,1000000] [--queries 200] [--databases sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.generate import GenerateStats, generate, generate_postgres, query_sets
from bench.summary import Row

ROOT = Path(__file__).resolve().parent.parent
BRANCH_IDS = [1, 2, 3]
WARMUP = 10
TARGET_P95_MS = 20.0
TARGET_RATIO = 3.0
SORTS = ("relevance", "newest")


@dataclass(frozen=True)
class Result:
    """Timings of one (database, size, query kind, sort) cell of the table."""

    backend: str
    size: int
    kind: str
    sort: str
    p50_ms: float
    p95_ms: float
    min_total: int
    max_total: int
    capped: bool

    @property
    def matches(self) -> str:
        top = f"{self.max_total}+ (capped)" if self.capped else str(self.max_total)
        return top if self.min_total == self.max_total else f"{self.min_total}–{top}"


def _percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile: with 200 runs p95 is the 190th, no interpolation to argue about."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered)) - 1))]


POSTGRES_ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _postgres_admin(statement: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as connection:
        connection.execute(statement)  # type: ignore[arg-type]


def fresh_postgres(name: str) -> str:
    """An empty PostgreSQL database `<name>_<pid>` (dropped first if left over); its app URL."""
    database = f"{name}_{os.getpid()}"
    _postgres_admin(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
    _postgres_admin(f"CREATE DATABASE {database}")
    return (
        POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
        + "/"
        + database
    )


def drop_postgres(url: str) -> None:
    _postgres_admin(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")


def migrate(url: str, var_dir: Path) -> None:
    """Migrate through the app's own CLI, as an operator would."""
    env = {**os.environ, "DATABASE_URL": url, "VAR_DIR": str(var_dir)}
    subprocess.run(
        [sys.executable, "-m", "app", "migrate"], env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL
    )


def make_database(directory: Path, size: int, backend: str = "sqlite") -> str:
    """A freshly migrated SQLite file or PostgreSQL database."""
    if backend == "postgresql":
        url = fresh_postgres(f"bench_search_{size}")
    else:
        url = f"sqlite+aiosqlite:///{directory / f'search-{size}.sqlite3'}"
    migrate(url, directory / f"var-{size}")
    return url


async def measure(url: str, size: int, queries: int, seed: int = 0, backend: str = "sqlite") -> list[Result]:
    """p50/p95 of catalog.search() per query kind and sort, a new session per call as a request has,
    reading as the search page does: SQLite's inline reads, PostgreSQL's reader (app/reads.PgReader,
    with its pool planned per run for the count and the keys)."""
    from app import db, reads
    from app.services import catalog

    engine = db.make_engine(url, inline_reads=backend == "sqlite")
    info: dict[str, object] = {}
    if backend == "postgresql":
        info = await reads.pg_reader(url, engine.dialect, server_settings=db.pg_server_settings(10.0))
    sessions = db.make_sessionmaker(engine, info=info or None)
    results: list[Result] = []
    try:
        for kind, texts in query_sets().items():
            for sort in SORTS:
                order = texts[:]
                random.Random(f"{seed}-{kind}-{sort}").shuffle(order)
                params = [catalog.parse_params({"q": q, "sort": sort}, BRANCH_IDS) for q in order]
                timings: list[float] = []
                totals: dict[str, tuple[int, bool]] = {}
                for run in range(WARMUP + queries):
                    p = params[run % len(params)]
                    async with sessions() as session:
                        started = time.perf_counter()
                        page = await catalog.search(session, p)
                        elapsed = time.perf_counter() - started
                    if run >= WARMUP:
                        timings.append(elapsed * 1000)
                    totals[p.q] = (page.total, page.total_capped)
                results.append(
                    Result(
                        backend,
                        size,
                        kind,
                        sort,
                        statistics.median(timings),
                        _percentile(timings, 95),
                        min(t for t, _ in totals.values()),
                        max(t for t, _ in totals.values()),
                        any(c for _, c in totals.values()),
                    )
                )
    finally:
        await reads.close_shared_reader(info)
        await engine.dispose()
    return results


def print_generation(generated: list[tuple[str, int, GenerateStats]]) -> None:
    """Generation cost is reported too: the full reindex is what a migration or `reindex` costs."""
    print("| database | size | items | insert s | reindex_all_sync s |")
    print("|---|---:|---:|---:|---:|")
    for backend, size, stats in generated:
        print(
            f"| {backend} | {size:,} | {stats.items:,} | {stats.insert_seconds:.1f} "
            f"| {stats.index_seconds:.1f} |"
        )
    print()


def print_table(results: list[Result]) -> None:
    print("| database | size | query kind | sort | matches | p50 ms | p95 ms |")
    print("|---|---:|---|---|---:|---:|---:|")
    for r in results:
        print(
            f"| {r.backend} | {r.size:,} | {r.kind} | {r.sort} | {r.matches} "
            f"| {r.p50_ms:.2f} | {r.p95_ms:.2f} |"
        )


def print_targets(all_results: list[Result]) -> None:
    """The two targets, read off the largest and smallest sizes measured, per database."""
    for backend in dict.fromkeys(r.backend for r in all_results):
        print(f"\n{backend}:", end="")
        _print_targets([r for r in all_results if r.backend == backend])


def _print_targets(results: list[Result]) -> None:
    sizes = sorted({r.size for r in results})
    small, large = sizes[0], sizes[-1]
    cell = {(r.size, r.kind, r.sort): r for r in results}
    print()
    print(
        f"Targets: p95 ≤ {TARGET_P95_MS:.0f} ms at 1,000,000 bibs; "
        f"1,000,000 at most {TARGET_RATIO:.0f}× the 10,000 p95."
    )
    slow = [r for r in results if r.size == large and r.p95_ms > TARGET_P95_MS]
    verdict = "all within" if not slow else f"{len(slow)} cell(s) over"
    note = "" if large == 1_000_000 else " (1,000,000 not measured: largest size shown instead)"
    print(f"p95 at {large:,}: {verdict} {TARGET_P95_MS:.0f} ms{note}")
    if small == large:
        return
    parts = []
    for kind in dict.fromkeys(r.kind for r in results):
        ratios = [
            f"{sort} {cell[(large, kind, sort)].p95_ms / cell[(small, kind, sort)].p95_ms:.1f}×"
            for sort in SORTS
        ]
        parts.append(f"{kind}: {', '.join(ratios)}")
    print(f"p95({large:,})/p95({small:,}): " + "; ".join(parts))


def summary_rows(results: list[Result]) -> list[Row]:
    """The search rows of the one table: every cell, the target judged at 1,000,000 titles."""
    return [
        Row(
            "search",
            f"{r.kind}, {r.sort}",
            r.backend,
            size=f"{r.size:,}",
            p50_ms=r.p50_ms,
            tail=f"p95 {r.p95_ms:.2f}",
            target=f"p95 ≤ {TARGET_P95_MS:.0f} ms at 1,000,000" if r.size == 1_000_000 else "",
            met=r.p95_ms <= TARGET_P95_MS if r.size == 1_000_000 else None,
        )
        for r in results
    ]


def main(argv: list[str] | None = None, summary: list[Row] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated bib counts")
    parser.add_argument("--queries", type=int, default=200, help="measured runs per query kind and sort")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--databases", default="sqlite,postgresql", help="sqlite, postgresql or both")
    parser.add_argument("--keep", action="store_true", help="keep the generated files (path is printed)")
    args = parser.parse_args(argv)
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    backends = [b.strip() for b in args.databases.split(",") if b.strip()]

    directory = Path(tempfile.mkdtemp(prefix="bench-search-"))
    results: list[Result] = []
    generated: list[tuple[str, int, GenerateStats]] = []
    try:
        for backend in backends:
            for size in sizes:
                url = make_database(directory, size, backend)
                if backend == "postgresql":
                    stats = generate_postgres(url, size, args.seed)
                else:
                    stats = generate(url, size, args.seed)
                print(
                    f"{backend} {size:,} bibs: {stats.items:,} items; insert {stats.insert_seconds:.1f} s, "
                    f"index {stats.index_seconds:.1f} s",
                    file=sys.stderr,
                    flush=True,
                )
                generated.append((backend, size, stats))
                results.extend(asyncio.run(measure(url, size, args.queries, args.seed, backend)))
                if not args.keep:
                    if backend == "postgresql":
                        drop_postgres(url)
                    for leftover in directory.glob(f"search-{size}.sqlite3*"):
                        leftover.unlink()
    finally:
        if args.keep:
            print(f"databases kept in {directory}", file=sys.stderr)
        else:
            shutil.rmtree(directory, ignore_errors=True)
    print_generation(generated)
    print_table(results)
    print_targets(results)
    if summary is not None:
        summary.extend(summary_rows(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

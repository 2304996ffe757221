"""`python -m bench`: every benchmark in turn, then one table of all their figures against the targets.

    python -m bench [--quick] [--parts pages,search,circulation,history] [--databases sqlite,postgresql]
    python -m bench pages|search|circulation [that part's own options]   one part, its own tables
    python -m bench history [--database ...]  every page's and job's database work, 1 and 10 years on
    python -m bench load | security                                      not part of the whole run
    python -m bench inprocess | instructions [options]   a page's own cost, without a server:
                                 µs per request, or instructions per request (callgrind)

The whole run takes 30–60 minutes on two cores (most of it generating and indexing 1,000,000
titles on each database); `--quick` measures 10,000 and 100,000 titles only (~10 minutes).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time


def run_all(argv: list[str]) -> int:
    from bench import circulation, history, pages, search
    from bench.summary import Row, print_summary

    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10,000 and 100,000 titles only")
    parser.add_argument("--parts", default="pages,search,circulation,history")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--seconds", type=int, default=10, help="wrk run per page")
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    rows: list[Row] = []
    started = time.perf_counter()
    databases = [d.strip() for d in args.databases.split(",") if d.strip()]
    if "pages" in parts:
        for database in databases:
            print(f"# pages on {database} (python -m bench pages --database {database})", flush=True)
            if pages.main(["--seconds", str(args.seconds), "--database", database], summary=rows):
                return 1
    if "search" in parts:
        print("\n# search (python -m bench search)", flush=True)
        sizes = "10000,100000" if args.quick else "10000,100000,1000000"
        search.main(["--sizes", sizes, "--databases", args.databases], summary=rows)
    if "circulation" in parts:
        print("\n# circulation (python -m bench circulation)", flush=True)
        sizes = "10000" if args.quick else "10000,1000000"
        circulation.main(["--sizes", sizes, "--databases", args.databases], summary=rows)
    if "history" in parts:
        for database in databases:
            print(f"\n# years of history (python -m bench history --database {database})", flush=True)
            history.main(["--database", database], summary=rows)
    minutes = (time.perf_counter() - started) / 60
    print_summary(
        rows,
        f"Pages: one server process on core 0, wrk -c32 on core 1 (PostgreSQL's own processes unpinned);"
        f" ratio = the page's req/s over the bare template route's in the same run."
        f" Whole run: {minutes:.0f} min.",
    )
    return 0


# `python -m bench NAME ...` runs bench/NAME.py's main() with the rest of the arguments.
PARTS = ("pages", "search", "circulation", "history", "load", "security", "inprocess", "instructions")


def main() -> int:
    command, rest = (sys.argv[1], sys.argv[2:]) if len(sys.argv) > 1 else ("", [])
    if command in PARTS:
        part = importlib.import_module(f"bench.{command}")
        return int(part.main(rest))
    return run_all(sys.argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())

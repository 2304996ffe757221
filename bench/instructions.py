"""Instructions per request, counted by valgrind (callgrind): a page's cost that the machine's noise
barely moves.

Wall-clock figures on these machines wander by 10–25 % between runs a minute apart, so a change
worth 5 % cannot be seen in them. Instruction counts of two runs made one after the other agree to
a part in a million, whatever else the machine is doing; a run of the same code made between two
such runs once came out up to 5 % higher (some of the work depends on timing, probably whether
Redis's reply is already there when the loop looks). So measure both versions in one sitting, one
right after the other, and repeat a surprising count.

For each route, `python -m bench.inprocess` runs under callgrind twice, once with N requests of that
route and once with none (start-up, log-in and warm-up, the same both times); the difference
divided by N is printed.

    python -m bench.instructions loans search [--requests 100]

Needs valgrind (apt-get install -y valgrind). About a minute per route on two cores, more under
load; counts, not time, so compare two versions of the code by running this on each, both in git
worktrees side by side (`--root`): the same code counted 5-10 % apart run from the main checkout
and from a worktree. Hash randomisation is fixed (PYTHONHASHSEED=0) so set and dict layouts repeat.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _count(root: Path, keep: Path, route: str, requests: int) -> int:
    own = Path(tempfile.mkdtemp(prefix="mylib-instructions-"))  # runs side by side: a database each
    shutil.copyfile(keep / "bench.pristine.sqlite3", own / "bench.pristine.sqlite3")
    try:
        return _run(root, own, route, requests)
    finally:
        shutil.rmtree(own, ignore_errors=True)


def _run(root: Path, keep: Path, route: str, requests: int) -> int:
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        "-m",
        "bench.inprocess",
        "--keep",
        str(keep),
        "--only",
        route,
        "--profile",
        route,
        "--sampled",
        "--rounds",
        str(requests),
        "--calls",
        "1",
    ]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, check=False)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"callgrind run failed for {route}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions")
    parser.add_argument("routes", nargs="+", help="bench.inprocess route names (bare, template, loans, ...)")
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--root", default=str(ROOT), help="the checkout whose code is measured")
    parser.add_argument("--keep", default="", help="the demo database's folder (made once, then reused)")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        print("valgrind is missing: apt-get install -y valgrind", file=sys.stderr)
        return 2
    keep = Path(args.keep) if args.keep else Path(tempfile.gettempdir()) / "mylib-instructions"
    root = Path(args.root).resolve()
    if not (keep / "bench.pristine.sqlite3").exists():  # the demo database, made once
        subprocess.run(
            [sys.executable, "-m", "bench.inprocess", "--keep", str(keep), "--rounds", "1", "--calls", "1"],
            cwd=root,
            check=True,
            capture_output=True,
        )
    jobs = [(route, n) for route in args.routes for n in (0, args.requests)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        counts = list(pool.map(lambda job: _count(root, keep, *job), jobs))
    print(f"\n{root} ({args.requests} requests a route; callgrind)")
    print("| route | k instructions per request |")
    print("|---|---:|")
    for i, route in enumerate(args.routes):
        idle, loaded = counts[2 * i], counts[2 * i + 1]
        print(f"| {route} | {(loaded - idle) / args.requests / 1000:,.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

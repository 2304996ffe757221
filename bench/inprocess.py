"""The pages' own cost: the ASGI app called directly, no server and no sockets (CPU µs per request).

Where `python -m bench` measures what a patron gets through a real server, this measures only the
app, so a change to one page can be compared before and after without the server's share and with
less noise: each route is called in turns (round robin) and the median and minimum of the rounds are
printed, with each route's ratio to the bare template route.

    python -m bench.inprocess [--rounds 30] [--calls 50] [--only loans,search] [--profile loans]

`--profile ROUTE` runs that route under cProfile instead and prints the top functions; with
`--sampled` it only runs it in a loop, for `py-spy record --pid` (no cProfile overhead).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import os
import pstats
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.pages import BENCH_CARD, BENCH_PASSWORD, HISTORY_YEARS, _add_bench_patron, _run


class _Client:
    """Calls an ASGI app with prepared requests; keeps cookies like a browser (one patron)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.cookies: dict[str, str] = {}

    def _scope(self, method: str, path: str, headers: dict[str, str]) -> dict[str, Any]:
        path, _, query = path.partition("?")
        cookie = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        raw.append((b"host", b"127.0.0.1:8000"))
        if cookie:
            raw.append((b"cookie", cookie.encode()))
        return {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": raw,
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }

    async def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> tuple[int, bytes]:
        scope = self._scope(method, path, headers or {})
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                await asyncio.sleep(3600)
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        status = 0
        chunks: list[bytes] = []

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                for key, value in message.get("headers", []):
                    if key.lower() == b"set-cookie":
                        name, _, rest = value.decode().partition("=")
                        self.cookies[name] = rest.split(";", 1)[0]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, send)
        return status, b"".join(chunks)


async def _lifespan(app: Any) -> tuple[asyncio.Task[None], asyncio.Queue[dict[str, Any]]]:
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    started = asyncio.Event()

    async def receive() -> dict[str, Any]:
        return await inbox.get()

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "lifespan.startup.complete":
            started.set()
        elif message["type"] == "lifespan.startup.failed":
            raise RuntimeError(message.get("message"))

    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    task = asyncio.ensure_future(app(scope, receive, send))
    await inbox.put({"type": "lifespan.startup"})
    await started.wait()
    return task, inbox


async def _routes(client: _Client) -> dict[str, tuple[str, str, dict[str, str], bytes]]:
    await client.request("GET", "/login")
    _, page = await client.request("GET", "/login")
    token = re.search(rb'name="_csrf_token" value="([^"]+)"', page).group(1).decode()  # type: ignore[union-attr]
    body = f"_csrf_token={token}&card_number={BENCH_CARD}&password={BENCH_PASSWORD}&next=/loans".encode()
    form = {"content-type": "application/x-www-form-urlencoded"}
    status, _ = await client.request("POST", "/login", form, body)
    assert status == 303, status
    _, loans = await client.request("GET", "/loans")
    loan_id = re.search(rb'action="/loans/(\d+)/renew"', loans).group(1).decode()  # type: ignore[union-attr]
    htmx = {"hx-request": "true", "x-csrftoken": token, **form}
    return {
        "bare": ("GET", "/healthz", {}, b""),
        "template": ("GET", "/healthz/page", {}, b""),
        "login": ("GET", "/login", {}, b""),
        # The fixed part of a patron's page: the session read and the header's cart link, no SQL.
        "cart-link": ("GET", "/cart/link", {"hx-request": "true"}, b""),
        "cart-page": ("GET", "/cart", {}, b""),
        "dashboard": ("GET", "/mylibrary", {}, b""),
        "loans": ("GET", "/loans", {}, b""),
        "holds": ("GET", "/holds", {}, b""),
        "search": ("GET", "/search?q=%E3%81%AE", {}, b""),
        "cart-add": ("POST", "/cart", htmx, b"bib_id=3"),
        "renew": ("POST", f"/loans/{loan_id}/renew", {"hx-request": "true", "x-csrftoken": token}, b""),
    }


async def _main(args: argparse.Namespace) -> None:
    from app.main import create_server_app

    # As `python -m app serve` runs it (its start-up heap frozen out of the collector's way), so the
    # figures hold no full collections that the served app does not have.
    app = create_server_app()
    task, inbox = await _lifespan(app)
    client = _Client(app)
    routes = await _routes(client)
    chosen = ["bare", "template", *[r for r in routes if r not in ("bare", "template")]]
    if args.only:
        chosen = ["bare", "template", *[r.strip() for r in args.only.split(",")]]
    for name in chosen:  # warm up, and check each answers
        method, path, headers, body = routes[name]
        for _ in range(50):
            status, _ = await client.request(method, path, headers, body)
        assert status < 400, (name, status)
    # What the warm-up compiled and cached (templates, plans, memos) stays for the process's life, as
    # the start-up heap does: frozen too, so that no full collection of it falls inside the measured
    # requests, where when it fell depended on everything allocated before it. (It does not explain
    # why the same code counts 5-10 % apart from two checkouts: see bench/instructions.py.)
    gc.collect()
    gc.freeze()
    if args.profile:
        method, path, headers, body = routes[args.profile]
        if args.sampled:  # for a sampling profiler attached from outside (py-spy record --pid)
            print(f"pid {os.getpid()}: {args.profile} in a loop", flush=True)
            for _ in range(args.calls * args.rounds):
                await client.request(method, path, headers, body)
        else:
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(args.calls * args.rounds):
                await client.request(method, path, headers, body)
            profiler.disable()
            pstats.Stats(profiler).sort_stats(args.sort).print_stats(args.top)
    else:
        samples: dict[str, list[float]] = {name: [] for name in chosen}
        for _ in range(args.rounds):
            for name in chosen:
                method, path, headers, body = routes[name]
                started = time.perf_counter()
                for _ in range(args.calls):
                    await client.request(method, path, headers, body)
                samples[name].append((time.perf_counter() - started) / args.calls * 1e6)
        template = statistics.median(samples["template"])
        print(f"\nin-process, {args.rounds} rounds of {args.calls} calls per route (µs per request)")
        print("| route | median µs | min µs | bare template ÷ route |")
        print("|---|---:|---:|---:|")
        for name in chosen:
            median = statistics.median(samples[name])
            print(f"| {name} | {median:.0f} | {min(samples[name]):.0f} | {template / median:.0%} |")
    await inbox.put({"type": "lifespan.shutdown"})
    await asyncio.wait_for(task, 10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.inprocess")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--only", default="", help="routes to measure besides the two yardsticks")
    parser.add_argument("--profile", default="", help="profile this route with cProfile instead")
    parser.add_argument(
        "--sampled", action="store_true", help="with --profile: no cProfile, for py-spy from outside"
    )
    parser.add_argument("--sort", default="tottime")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--keep", default="", help="reuse (or make) the demo database in this folder")
    parser.add_argument(
        "--history-years",
        type=int,
        default=HISTORY_YEARS,
        help="years of history in a database made now (a kept one keeps what it was made with)",
    )
    args = parser.parse_args(argv)
    tmp = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="mylib-inproc-"))
    tmp.mkdir(parents=True, exist_ok=True)
    url = f"sqlite+aiosqlite:///{tmp / 'bench.sqlite3'}"
    env = {
        **os.environ,
        "APP_ENV": "test",
        "DATABASE_URL": os.environ.get("BENCH_DATABASE_URL", url),
        "VAR_DIR": str(tmp),
        "REDIS_NAMESPACE": f"bench-{os.getpid()}",
        "SECRET_KEY": "k" * 48,
    }
    # A kept database starts each run as it was made (the renew route renews a loan a run).
    pristine = tmp / "bench.pristine.sqlite3"
    fresh = not pristine.exists() or "BENCH_DATABASE_URL" in os.environ
    if fresh:
        _run([sys.executable, "-m", "app", "migrate"], env)
        _run([sys.executable, "-m", "app", "demo-data"], env)
    names = ("APP_ENV", "DATABASE_URL", "VAR_DIR", "REDIS_NAMESPACE", "SECRET_KEY")
    os.environ.update({k: env[k] for k in names})
    if fresh:
        asyncio.run(_add_bench_patron(env["DATABASE_URL"], args.history_years))
        if "BENCH_DATABASE_URL" not in os.environ:
            shutil.copyfile(tmp / "bench.sqlite3", pristine)
    else:
        shutil.copyfile(pristine, tmp / "bench.sqlite3")
    import uvloop

    uvloop.run(_main(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

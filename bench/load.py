"""`python -m bench load`: simulated patrons against two web processes, then the data checked.

Each simulated patron logs in, then for the whole run searches, opens a title, adds it to the cart,
places a hold (pickup at the first branch, by phone), sometimes cancels one of its waiting holds,
renews a loan and opens the dashboard, each request on either web process at random (sessions,
carts and CSRF tokens live in Redis, so both processes must accept them). Errors are 5xx answers,
connection failures and any answer outside what the action may give. Afterwards the same
invariants as the fuzzing test: no loan without an item, no item on two open loans or held for two
patrons, nobody over the hold limit.

    python -m bench load [--patrons 200] [--seconds 120] [--database sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

from bench.search import drop_postgres, fresh_postgres

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "load-2026"
CSRF = re.compile(r'name="_csrf_token" value="([^"]+)"')
BIB = re.compile(r'href="/bibs/(\d+)"')
RENEW = re.compile(r'action="/loans/(\d+)/renew"')
CANCEL = re.compile(r'hx-post="/holds/(\d+)/cancel"')
NUMBER = re.compile(r"/\d+")
QUERIES = ["の", "猫", "夜", "春", "海", "東京", "Pride", "history", "山", "花"]


async def _prepare(url: str, patrons: int) -> list[str]:
    """`patrons` patrons with one password (one argon2 hash, copied), each with two open loans."""
    from sqlalchemy import select

    from app import clock
    from app.db import session_scope
    from app.models import Item, Loan, Patron
    from app.services.passwords import hash_password

    today = clock.today()
    digest = await hash_password(PASSWORD)
    cards = []
    async with session_scope(url) as session:
        items = (await session.scalars(select(Item).where(Item.status == "on_shelf", Item.loanable))).all()
        for n in range(patrons):
            card = f"5{n:08d}"
            patron = Patron(
                card_number=card,
                card_expires_on=today + dt.timedelta(days=365),
                name=f"負荷 {n}",
                name_en=f"Load {n}",
                password_hash=digest,
                password_state="permanent",
                phone="090-0000-0000",
            )
            session.add(patron)
            await session.flush()
            for item in items[2 * n : 2 * n + 2]:
                item.status = "on_loan"
                session.add(
                    Loan(
                        item_id=item.id,
                        patron_id=patron.id,
                        branch_id=item.branch_id,
                        loaned_on=today - dt.timedelta(days=7),
                        due_on=today + dt.timedelta(days=7),
                    )
                )
            cards.append(card)
        await session.commit()
    return cards


class Stats:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.login_latencies: list[float] = []  # argon2 by design: reported apart
        self.steady: list[float] = []  # after every patron has logged in
        self.steady_from = float("inf")
        self.retried = 0
        self.errors: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()


async def _patron(
    card: str, bases: list[str], start: float, deadline: float, stats: Stats, rng: random.Random
) -> None:
    import httpx

    await asyncio.sleep(max(0.0, start - time.monotonic()))  # patrons arrive over the ramp-up
    # Idle connections are dropped before the server's 5 s keep-alive ends, so a request never
    # races the server closing its connection (a client artefact, not an error of the app).
    limits = httpx.Limits(keepalive_expiry=3)
    async with httpx.AsyncClient(timeout=30, follow_redirects=False, limits=limits) as client:

        async def call(method: str, path: str, ok: tuple[int, ...], **kw: object) -> httpx.Response | None:
            started = time.perf_counter()
            base = rng.choice(bases)
            try:
                try:
                    response = await client.request(method, base + path, **kw)  # type: ignore[arg-type]
                except httpx.RemoteProtocolError:
                    # The server closed a kept-alive connection just as this request went out on it;
                    # browsers retry that once on a new connection, and so does this client.
                    stats.retried += 1
                    response = await client.request(method, base + path, **kw)  # type: ignore[arg-type]
            except httpx.HTTPError as error:
                stats.errors[f"{method} {path.split('?')[0]}: {type(error).__name__}"] += 1
                return None
            took = time.perf_counter() - started
            (stats.login_latencies if path == "/login" else stats.latencies).append(took)
            if path != "/login" and time.monotonic() > stats.steady_from:
                stats.steady.append(took)
            stats.statuses[response.status_code] += 1
            if response.status_code not in ok:
                route = NUMBER.sub("/N", path.split("?")[0])
                stats.errors[f"{method} {route}: {response.status_code}"] += 1
            return response

        page = await call("GET", "/login", (200,))
        if page is None:
            return
        token = CSRF.search(page.text).group(1)  # type: ignore[union-attr]
        form = {"_csrf_token": token, "card_number": card, "password": PASSWORD}
        if await call("POST", "/login", (303,), data=form) is None:
            return
        while time.monotonic() < deadline:
            results = await call("GET", "/search?q=" + rng.choice(QUERIES), (200,))
            bibs = BIB.findall(results.text) if results is not None else []
            if bibs:
                bib = rng.choice(bibs)
                await call("GET", f"/bibs/{bib}", (200,))
                # 200: added (htmx), 400: not reservable or the cart is full
                await call(
                    "POST",
                    "/cart",
                    (200, 400),
                    data={"_csrf_token": token, "bib_id": bib},
                    headers={"HX-Request": "true", "x-csrftoken": token},
                )
                form = {"_csrf_token": token, "bib": bib, "pickup": "1", "contact": "phone"}
                await call("POST", "/holds/place", (303, 400), data=form)
            holds = await call("GET", "/holds", (200,))
            waiting = CANCEL.findall(holds.text) if holds is not None else []
            if waiting and rng.random() < 0.4:
                await call(
                    "POST", f"/holds/{rng.choice(waiting)}/cancel", (303,), data={"_csrf_token": token}
                )
            loans = await call("GET", "/loans", (200,))
            renewable = RENEW.findall(loans.text) if loans is not None else []
            if renewable:
                await call(
                    "POST", f"/loans/{rng.choice(renewable)}/renew", (303,), data={"_csrf_token": token}
                )
            await call("GET", "/mylibrary", (200,))


def _invariants(url: str) -> dict[str, int]:
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    from app.integrity import broken
    from app.policy import load_policy

    engine = create_engine(url.replace("+aiosqlite", "").replace("+asyncpg", "+psycopg"), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return broken(connection, load_policy("default").hold_limit)
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench load", description=__doc__)
    parser.add_argument("--patrons", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=120)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="mylib-load-"))
    if args.database == "postgresql":
        url = fresh_postgres("bench_load")
    else:
        url = f"sqlite+aiosqlite:///{tmp / 'load.sqlite3'}"
    env = {
        **os.environ,
        "APP_ENV": "test",
        "DATABASE_URL": url,
        "VAR_DIR": str(tmp),
        "REDIS_NAMESPACE": f"load-{os.getpid()}",
        "SECRET_KEY": "l" * 48,
    }
    servers: list[subprocess.Popen[bytes]] = []
    try:
        for command in (["migrate"], ["demo-data"]):
            subprocess.run(
                [sys.executable, "-m", "app", *command],
                env=env,
                cwd=ROOT,
                check=True,
                stdout=subprocess.DEVNULL,
            )
        os.environ.update({k: env[k] for k in ("DATABASE_URL", "VAR_DIR", "SECRET_KEY")})
        cards = asyncio.run(_prepare(url, args.patrons))
        bases = []
        for n in range(2):
            port = 8700 + (os.getpid() + n) % 200
            log = (tmp / f"server-{n}.log").open("wb")
            servers.append(
                subprocess.Popen(
                    [sys.executable, "-m", "app", "serve", "--port", str(port)],
                    env=env,
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
            bases.append(f"http://127.0.0.1:{port}")
        for base in bases:
            for _ in range(150):
                try:
                    urllib.request.urlopen(base + "/healthz", timeout=1)
                    break
                except OSError:
                    time.sleep(0.2)
        stats = Stats()
        started = time.monotonic()

        async def run() -> None:
            now = time.monotonic()
            deadline = now + args.seconds
            rng = random.Random(0)
            ramp = min(20.0, args.seconds / 4)
            stats.steady_from = now + ramp + 10
            await asyncio.gather(
                *(
                    _patron(
                        card, bases, now + ramp * n / len(cards), deadline, stats, random.Random(rng.random())
                    )
                    for n, card in enumerate(cards)
                )
            )

        asyncio.run(run())
        elapsed = time.monotonic() - started
        found = _invariants(url)
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=10)
        for log_file in sorted(tmp.glob("server-*.log")):
            text = log_file.read_text(errors="replace")
            if "Traceback" in text or os.environ.get("LOAD_SHOW_LOGS"):  # the servers' own account of errors
                start = text.rfind("Traceback")
                print(f"--- {log_file.name}\n" + text[max(start, 0) :][-3000:])
        shutil.rmtree(tmp, ignore_errors=True)
        if args.database == "postgresql":
            drop_postgres(url)

    latencies = sorted(stats.latencies)
    p99 = latencies[int(len(latencies) * 0.99) - 1] if latencies else float("nan")
    logins = sorted(stats.login_latencies)
    print(f"\n{args.patrons} patrons, {args.seconds} s, 2 web processes (uvicorn), {args.database}\n")
    print("| requests (after log-in) | req/s | p50 ms | p99 ms | errors | statuses |")
    print("|---:|---:|---:|---:|---:|---|")
    print(
        f"| {len(latencies):,} | {len(latencies) / elapsed:.0f} | "
        f"{statistics.median(latencies) * 1000:.0f} | "
        f"{p99 * 1000:.0f} | {sum(stats.errors.values())} | "
        + ", ".join(f"{k}: {v:,}" for k, v in sorted(stats.statuses.items()))
        + " |"
    )
    steady = sorted(stats.steady)
    if steady:
        print(
            f"\nOnce every patron is in (from {min(20.0, args.seconds / 4) + 10:.0f} s on): "
            f"{len(steady):,} requests, p50 {statistics.median(steady) * 1000:.0f} ms, "
            f"p99 {steady[int(len(steady) * 0.99) - 1] * 1000:.0f} ms"
        )
    if logins:
        print(
            f"\nLog-ins (GET and POST /login, argon2 by design, the patrons arriving over the first "
            f"{min(20.0, args.seconds / 4):.0f} s): {len(logins)}, "
            f"p50 {statistics.median(logins) * 1000:.0f} ms, "
            f"p99 {logins[int(len(logins) * 0.99) - 1] * 1000:.0f} ms"
        )
    print(f"Requests retried once on a closed kept-alive connection (as browsers do): {stats.retried}")
    print("\n| invariant | rows breaking it |\n|---|---:|")
    for name, count in found.items():
        print(f"| {name} | {count} |")
    for what, count in stats.errors.most_common(10):
        print(f"- error: {what} ×{count}")
    return 1 if stats.errors or any(found.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())

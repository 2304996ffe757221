"""Pages under load: the yardsticks (a bare string route, a bare 2 KB template route) and the real pages.

The server runs pinned to core 0 (taskset), wrk pinned to core 1, 32 connections, for each ASGI
server (uvicorn with uvloop + httptools, and granian). Machines are noisy: read each page's ratio to
the bare *template* route measured in the same run and server, not the absolute numbers. That route
is measured again between pages, and each page is compared with the runs just before and after it.
Every run is preceded by a second of the same load that is not counted (`--warm-up`): a server runs
for days, and the first second of each page on a new process (its statements compiled and prepared
on each pooled connection, connections opened) is not the steady state the p99 is read for.

    python -m bench pages [--seconds 10] [--connections 32] [--servers uvicorn,granian]
                          [--database sqlite|postgresql] [--only renew,holds] [--warm-up 1]

On PostgreSQL (a fresh database on the local server, as bench/search.py makes them) the database's
own processes are not pinned: they take CPU from both cores, so read those ratios as the whole
machine's cost of a page, not the web process's alone.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

from bench.summary import Row

ROOT = Path(__file__).resolve().parent.parent
BENCH_CARD, BENCH_PASSWORD = "100000090", "bench-2026"


def _run(cmd: list[str], env: dict[str, str]) -> None:
    subprocess.run(cmd, env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)


async def _add_bench_patron(database_url: str, history_years: int = 0) -> int:
    """A patron with 10 open loans (none renewed, due in a week: renewable) and 5 waiting holds;
    with `history_years`, the library's past too (`_add_history`)."""
    from sqlalchemy import select

    from app import clock
    from app.db import session_scope
    from app.models import Hold, Item, Loan, Patron
    from app.services.passwords import hash_password

    today = clock.today()
    async with session_scope(database_url) as session:
        patron = Patron(
            card_number=BENCH_CARD,
            card_expires_on=today + dt.timedelta(days=365),
            name="ベンチ 太郎",
            name_en="Bench Taro",
            password_hash=await hash_password(BENCH_PASSWORD),
            password_state="permanent",
        )
        session.add(patron)
        await session.flush()
        items = (
            await session.scalars(select(Item).where(Item.status == "on_shelf", Item.loanable).limit(10))
        ).all()
        for item in items:
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
        held = (
            await session.scalars(select(Item.bib_id).where(Item.status == "on_loan").distinct().limit(15))
        ).all()
        for n, bib_id in enumerate(held[10:15] if len(held) >= 15 else held[:5]):
            session.add(
                Hold(
                    patron_id=patron.id,
                    bib_id=bib_id,
                    status="waiting",
                    placed_at=dt.datetime.combine(today, dt.time(9)) + dt.timedelta(minutes=n),
                    pickup_branch_id=items[0].branch_id,
                    contact="phone",
                )
            )
        await session.commit()
        patron_id: int = patron.id
    if history_years:
        await _add_history(database_url, patron_id, years=history_years)
    if database_url.startswith("postgresql"):
        # The planner's statistics, as autovacuum keeps them on a library's server (this machine's
        # PostgreSQL runs with autovacuum off, so without this every table was planned unmeasured).
        from sqlalchemy import text

        async with session_scope(database_url) as session:
            await session.execute(text("ANALYZE"))
            await session.commit()
    return patron_id


HISTORY_YEARS = 5


async def _add_history(
    database_url: str,
    patron_id: int,
    *,
    years: int = HISTORY_YEARS,
    older_than_days: int = 30,
    marathon: bool = True,
    seed: int = 2026,
) -> dict[str, int]:
    """What a library holds after `years` of use, so that the pages are measured against it.

    Why: the demo data is a library on its first day (one news item, no returned loans). The
    statements that read "current" rows out of a growing table (news still shown, open loans,
    active holds) cost the same there whatever their indexes; after a few years they may not.
    Added, all in the past so that the pages show what they showed before:
    - news: 300 items a year, 5 % urgent, 80 % with a "show until" day 1-8 weeks on;
    - the bench patron: 300 returned loans a year (a heavy reader), 60 holds collected and 10
      cancelled a year, and (`marathon`) a reading marathon for this year, so that the
      dashboard's count runs;
    - every other patron: 60 returned loans and 12 collected holds a year;
    - the mails those sent (nearly all sent, 1 % failed) and 50 reviewed online registrations a year.
    Everything is dated between `older_than_days` and `years` ago. Deterministic (seeded).
    Returns how many rows of each kind were added.
    """
    import random

    from sqlalchemy import insert, select

    from app import clock
    from app.db import session_scope
    from app.models import Branch, Hold, Item, Loan, Marathon, News, Notice, Patron, Registration

    today = clock.today()
    rng = random.Random(seed)
    days = years * 365

    def day() -> dt.date:
        return today - dt.timedelta(days=rng.randint(older_than_days, days))

    async with session_scope(database_url) as session:
        items = (await session.execute(select(Item.id, Item.bib_id, Item.branch_id))).all()
        patrons = (await session.scalars(select(Patron.id))).all()
        branch = (await session.scalars(select(Branch.id).order_by(Branch.id))).first()
        news = []
        for n in range(300 * years):
            published = day()
            until = None if rng.random() < 0.2 else published + dt.timedelta(days=rng.randint(7, 56))
            news.append(
                {
                    "title_ja": f"お知らせ {n}",
                    "title_en": f"News {n}",
                    "body_ja": "図書館からのお知らせです。" * 5,
                    "urgent": rng.random() < 0.05,
                    "published_on": published,
                    "shown_until": until,
                }
            )
        loans, holds = [], []
        for patron in patrons:
            heavy = patron == patron_id
            for _ in range((300 if heavy else 60) * years):
                item_id, _, home = rng.choice(items)
                loaned = day()
                loans.append(
                    {
                        "item_id": item_id,
                        "patron_id": patron,
                        "branch_id": home,
                        "loaned_on": loaned,
                        "due_on": loaned + dt.timedelta(days=14),
                        "returned_on": loaned + dt.timedelta(days=rng.randint(1, 14)),
                    }
                )
            for n in range((70 if heavy else 12) * years):
                item_id, bib_id, _ = rng.choice(items)
                placed = dt.datetime.combine(day(), dt.time(10))
                collected = n % 7 != 0 or not heavy
                holds.append(
                    {
                        "patron_id": patron,
                        "bib_id": bib_id,
                        "status": "collected" if collected else "cancelled",
                        "placed_at": placed,
                        "pickup_branch_id": branch,
                        "item_id": item_id if collected else None,
                        "cancelled_at": None if collected else placed + dt.timedelta(days=3),
                    }
                )
        # The mails of those years, nearly all sent (a due reminder for one loan in three, a
        # pickup mail for each collected hold, one in a hundred given up on), and the online
        # registrations staff reviewed (50 a year, one in ten rejected; their documents deleted).
        mails = []
        for n, row in enumerate(loans[::3] + [h for h in holds if h["status"] == "collected"]):
            sent_at = dt.datetime.combine(row.get("loaned_on") or row["placed_at"].date(), dt.time(8))
            mails.append(
                {
                    "type": "due_reminder" if "loaned_on" in row else "pickup_ready",
                    "patron_id": row["patron_id"],
                    "dedup_key": f"history:{seed}:{n}",
                    "payload": "{}",
                    "status": "failed" if n % 100 == 99 else "sent",
                    "attempts": 1,
                    "created_at": sent_at,
                    "sent_at": sent_at,
                }
            )
        registrations = []
        for n in range(50 * years):
            applied = dt.datetime.combine(day(), dt.time(11))
            registrations.append(
                {
                    "status": "rejected" if n % 10 == 9 else "approved",
                    "eligibility": "live",
                    "name": f"申込 {n}",
                    "name_kana": "モウシコミ",
                    "birth_date": dt.date(1980, 1, 1) + dt.timedelta(days=n),
                    "address": "福岡市中央区",
                    "phone": "092-000-0000",
                    "email": f"applicant{seed}-{n}@example.jp",
                    "password_hash": "-",
                    "created_at": applied,
                    "reviewed_at": applied + dt.timedelta(days=2),
                }
            )
        for model, rows in (
            (News, news),
            (Loan, loans),
            (Hold, holds),
            (Notice, mails),
            (Registration, registrations),
        ):
            for start in range(0, len(rows), 5000):
                await session.execute(insert(model), rows[start : start + 5000])
        if marathon:
            starts, ends = today.replace(month=1, day=1), today.replace(month=12, day=31)
            session.add(Marathon(patron_id=patron_id, goal=100, starts_on=starts, ends_on=ends))
        await session.commit()
    return {
        "news": len(news),
        "loans": len(loans),
        "holds": len(holds),
        "notices": len(mails),
        "registrations": len(registrations),
    }


def _login(base: str) -> tuple[str, str, int]:
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(base + "/login").read().decode()
    token = re.search(r'name="_csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    body = urllib.parse.urlencode(
        {"_csrf_token": token, "card_number": BENCH_CARD, "password": BENCH_PASSWORD, "next": "/loans"}
    ).encode()
    loans = opener.open(base + "/login", data=body).read().decode()
    loan_id = int(re.search(r'action="/loans/(\d+)/renew"', loans).group(1))  # type: ignore[union-attr]
    cookie = "; ".join(f"{c.name}={c.value}" for c in jar)
    return cookie, token, loan_id


WARM_UP_SECONDS = 1


def _wrk(
    url: str,
    seconds: int,
    connections: int,
    headers: dict[str, str],
    post: bool = False,
    body: str = "",
    warm_up: int = 0,
) -> dict[str, float]:
    """`wrk` on `url` for `seconds`, after `warm_up` seconds of the same load whose figures are dropped."""
    cmd = ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", "--latency"]
    # As a browser asks: its languages (the app negotiates them when no language was chosen). No
    # Accept-Encoding: behind the proxy of the README the proxy compresses (it asks the app for none).
    headers = {"Accept-Language": "ja,en-US;q=0.9,en;q=0.8", **headers}
    for key, value in headers.items():
        cmd += ["-H", f"{key}: {value}"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        if post:
            script.write('wrk.method = "POST"\n')
        if body:
            script.write(f"wrk.body = {body!r}\n".replace("'", '"'))
        cmd += ["-s", script.name]
    if warm_up:
        subprocess.run([*cmd, f"-d{warm_up}s", url], capture_output=True, check=True)
    out = subprocess.run([*cmd, f"-d{seconds}s", url], capture_output=True, text=True, check=True).stdout
    os.unlink(script.name)

    def latency(label: str) -> float:
        match = re.search(rf"\s{label}\s+([\d.]+)(us|ms|s)", out)
        if not match:
            return float("nan")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps,
        "p50": latency("50%"),
        "p99": latency("99%"),
        "errors": float(non2xx.group(1)) if non2xx else 0,
    }


def _measure(
    base: str, seconds: int, connections: int, only: tuple[str, ...] = (), warm_up: int = WARM_UP_SECONDS
) -> list[tuple[str, dict[str, float]]]:
    cookie, token, loan_id = _login(base)
    auth = {"Cookie": cookie}
    htmx_post = {
        **auth,
        "HX-Request": "true",
        "x-csrftoken": token,
        "Content-Type": "application/x-www-form-urlencoded",
    }
    pages: list[tuple[str, str, dict[str, str], bool, str]] = [
        ("/login (page template, no database)", "/login", {}, False, ""),
        ("/mylibrary dashboard", "/mylibrary", auth, False, ""),
        ("/loans (10 loans)", "/loans", auth, False, ""),
        ("/holds (5 holds)", "/holds", auth, False, ""),
        ("search results (/search?q=の, 20 hits)", "/search?q=%E3%81%AE", auth, False, ""),
        ("cart-add fragment (htmx POST)", "/cart", htmx_post, True, "bib_id=3"),
        (
            "renew fragment (htmx POST)",
            f"/loans/{loan_id}/renew",
            {**auth, "HX-Request": "true", "x-csrftoken": token},
            True,
            "",
        ),
    ]
    if only:
        pages = [page for page in pages if any(word in page[0] for word in only)]
    # The bare template route is measured again between pages (half as long): the machine's speed
    # drifts over a run, and each page is compared with the yardstick measured around it (the mean
    # of the runs just before and just after), not with one taken minutes earlier.
    short = max(2, seconds // 2)

    def load(
        path: str, seconds: int, headers: dict[str, str], post: bool = False, body: str = ""
    ) -> dict[str, float]:
        return _wrk(base + path, seconds, connections, headers, post=post, body=body, warm_up=warm_up)

    def yardstick() -> dict[str, float]:
        return load("/healthz/page", short, {})

    bare = load("/healthz", seconds, {})
    template = load("/healthz/page", seconds, {})
    around = [yardstick()]
    rows: list[tuple[str, dict[str, float]]] = []
    for name, path, headers, post, body in pages:
        result = load(path, seconds, headers, post=post, body=body)
        around.append(yardstick())
        result["yardstick"] = (around[-2]["rps"] + around[-1]["rps"]) / 2
        rows.append((name, result))
    spread = [run["rps"] for run in around]
    template["spread"] = min(spread) / max(spread)  # how far the machine drifted over the run
    return [
        ("bare route /healthz (a fixed string)", bare),
        ("bare template route /healthz/page (2 KB)", template),
        *rows,
    ]


# The pages issue 7 sets a target for (the log-in page and the renew fragment are measured as well).
TARGET_PAGES = ("/mylibrary", "/loans", "/holds", "search results", "cart-add")
TARGET_RATIO, TARGET_P99_MS = 0.5, 50.0


def summary_rows(
    tables: list[tuple[str, list[tuple[str, dict[str, float]]]]], database: str = "sqlite"
) -> list[Row]:
    """The pages' rows of the one table: each server's routes, the targeted pages judged."""
    out = []
    target = f"≥ {TARGET_RATIO:.0%} of bare template, p99 ≤ {TARGET_P99_MS:.0f} ms"
    for server_name, rows in tables:
        template = rows[1][1]["rps"]
        for name, r in rows:
            judged = name.startswith(TARGET_PAGES)
            ratio = r["rps"] / r.get("yardstick", template)
            met = ratio >= TARGET_RATIO and r["p99"] <= TARGET_P99_MS and not r["errors"]
            out.append(
                Row(
                    "pages",
                    f"{name} ({server_name})",
                    database,
                    rate=f"{r['rps']:.0f} req/s",
                    p50_ms=r["p50"],
                    tail=f"p99 {r['p99']:.1f}",
                    ratio=f"{ratio:.0%}",
                    target=target if judged else "",
                    met=met if judged else None,
                )
            )
    return out


def main(argv: list[str] | None = None, summary: list[Row] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench pages")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--warm-up",
        type=int,
        default=WARM_UP_SECONDS,
        help="seconds of the same load before each run, not counted (0: measure from a cold start)",
    )
    parser.add_argument("--servers", default="uvicorn,granian", help="ASGI servers to measure, in turn")
    parser.add_argument("--database", default="sqlite", choices=("sqlite", "postgresql"))
    parser.add_argument(
        "--only",
        default="",
        help="pages whose names contain one of these words (comma-separated): renew,holds",
    )
    parser.add_argument(
        "--history-years",
        type=int,
        default=HISTORY_YEARS,
        help="years of past news, loans and holds in the library (_add_history); 0: the demo data alone",
    )
    args = parser.parse_args(argv)
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            print(
                f"{tool} is missing: apt-get install -y {'wrk' if tool == 'wrk' else 'util-linux'}",
                file=sys.stderr,
            )
            return 2
    from bench.search import drop_postgres, fresh_postgres

    tmp = Path(tempfile.mkdtemp(prefix="mylib-bench-"))
    url = (
        fresh_postgres("bench_pages")
        if args.database == "postgresql"
        else f"sqlite+aiosqlite:///{tmp / 'bench.sqlite3'}"
    )
    env = {
        **os.environ,
        "APP_ENV": "test",
        "DATABASE_URL": url,
        "VAR_DIR": str(tmp),
        "REDIS_NAMESPACE": f"bench-{os.getpid()}",
        "SECRET_KEY": "k" * 48,
    }
    _run([sys.executable, "-m", "app", "migrate"], env)
    _run([sys.executable, "-m", "app", "demo-data"], env)
    os.environ.update({k: env[k] for k in ("DATABASE_URL", "VAR_DIR")})
    asyncio.run(_add_bench_patron(url, args.history_years))
    tables: list[tuple[str, list[tuple[str, dict[str, float]]]]] = []
    only = tuple(word.strip() for word in args.only.split(",") if word.strip())
    try:
        for server_name in [s.strip() for s in args.servers.split(",") if s.strip()]:
            port = 8900 + os.getpid() % 90
            command = [sys.executable, "-m", "app", "serve", "--port", str(port), "--server", server_name]
            server = subprocess.Popen(
                ["taskset", "-c", "0", *command],
                env=env,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            base = f"http://127.0.0.1:{port}"
            try:
                for _ in range(100):
                    try:
                        urllib.request.urlopen(base + "/healthz", timeout=1)
                        break
                    except OSError:
                        time.sleep(0.2)
                tables.append(
                    (server_name, _measure(base, args.seconds, args.connections, only, warm_up=args.warm_up))
                )
            finally:
                server.terminate()
                server.wait(timeout=10)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if args.database == "postgresql":
            drop_postgres(url)
    print(
        f"\nserver: 1 process on core 0; load: wrk -t1 -c{args.connections} -d{args.seconds}s on core 1"
        f" after {args.warm_up} s of it not counted;"
        f" database: {args.database}; history: {args.history_years} years (bench/pages.py, _add_history)"
    )
    # Two yardsticks: the foundation and catalogue issues compare pages with the bare route (target
    # 25 %), the scale issue with the bare template route (target 50 %).
    print("| server | route | req/s | p50 ms | p99 ms | to bare route | to bare template | non-2xx |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for server_name, rows in tables:
        bare, template = rows[0][1]["rps"], rows[1][1]["rps"]
        for name, r in rows:
            yardstick = r.get("yardstick", template)
            print(
                f"| {server_name} | {name} | {r['rps']:.0f} | {r['p50']:.1f} | {r['p99']:.1f} "
                f"| {r['rps'] / bare:.0%} | {r['rps'] / yardstick:.0%} | {r['errors']:.0f} |"
            )
    print(
        "\n'to bare template': each page against the bare template route measured just before and just"
        " after it (the mean of the two runs). The slowest of those yardstick runs reached "
        + ", ".join(f"{rows[1][1]['spread']:.0%} of the fastest ({name})" for name, rows in tables)
        + ": how much the machine drifted."
    )
    if summary is not None:
        summary.extend(summary_rows(tables, args.database))
    print(
        "\nThe renew fragment renews once, then answers 'already renewed' for the same loan: it measures the"
        " read, the rule check and the fragment render on every request, and the UPDATE once."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

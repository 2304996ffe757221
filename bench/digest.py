"""New-arrival digest benchmark: 100 000 patrons with 3 alerts each on a 1 000 000-title catalogue.

Set-up (plain sqlite3, like bench/circulation.py): the generated catalogue; each copy's
`available_since` spread over ten years, so about one title in 700 became available in the last
fortnight (the digest's "new arrivals"); those titles are published this year, 10 % of them as
magazines or serials (excluded); 100 000 patrons opted in to new-arrival mail, every other one with a
confirmed address; 3 alerts each, drawn from the generator's word lists (one word, two words, a word
with a material type, an English word), so some alerts match many new titles and most match few.

Measured: alerts.run_digest() for the day, on the app's normal engine, with its SQL statements
counted — total seconds, statements per patron, notices queued; then the worker's deliver_pending()
sending a sample of those digest mails (the largest mails the service sends) to a local aiosmtpd
that only counts them: mails per second.

    python -m bench.digest [--bibs 1000000] [--patrons 100000] [--mails 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
import shutil
import tempfile
import time
from pathlib import Path

from bench.circulation import (
    SECRET,
    add_patrons,
    bulk,
    count_statements,
    deliver_to_counting_smtp,
    make_database,
)
from bench.generate import COMMON_WORDS, ENGLISH_WORDS, MID_WORDS, RARE_WORDS, insert_rows

DAY = dt.date(2026, 12, 8)  # the 2nd Tuesday of December 2026
SPREAD_DAYS = 3650


def setup(path: str, n_bibs: int, n_patrons: int, seed: int) -> dict[str, int]:
    insert_rows(path, n_bibs, seed)
    rng = random.Random(f"digest-{seed}")
    with bulk(path) as db:
        db.execute(
            "UPDATE items SET available_since = date(?, '-' || ((id * 7919) % ?) || ' days')",
            (DAY.isoformat(), SPREAD_DAYS),
        )
        fresh = [
            r[0]
            for r in db.execute(
                "SELECT DISTINCT bib_id FROM items WHERE available_since > date(?, '-14 days')",
                (DAY.isoformat(),),
            )
        ]
        db.executemany(
            "UPDATE bibs SET pub_year = ?, material_type = ? WHERE id = ?",
            [(DAY.year, "serial" if rng.random() < 0.1 else "book", b) for b in fresh],
        )
        add_patrons(db, n_patrons, rng)
        db.execute("UPDATE patrons SET notify_arrivals = 1")
        words = [w for w, _ in COMMON_WORDS + MID_WORDS + RARE_WORDS]
        alerts = []
        for patron in range(1, n_patrons + 1):
            for k in range(3):
                kind = rng.random()
                if kind < 0.5:
                    query: dict[str, object] = {"q": rng.choice(words)}
                elif kind < 0.75:
                    query = {"q": " ".join(rng.sample(words, 2))}
                elif kind < 0.9:
                    query = {"q": rng.choice(words), "material_type": "book"}
                else:
                    query = {"q": rng.choice(ENGLISH_WORDS)}
                alerts.append(
                    (patron, f"alert {k + 1}", json.dumps(query, ensure_ascii=False, sort_keys=True))
                )
        db.executemany(
            "INSERT INTO alerts (patron_id, name, query, created_at) VALUES (?, ?, ?, CURRENT_TIMESTAMP)",
            alerts,
        )
    return {"fresh_titles": len(fresh), "alerts": len(alerts)}


async def measure(url: str, directory: Path, mails: int) -> dict[str, float]:
    from sqlalchemy import text

    from app import db
    from app.services import alerts

    engine = db.make_engine(url)
    statements = count_statements(engine)
    try:
        async with db.make_sessionmaker(engine)() as session:
            started = time.perf_counter()
            counts = await alerts.run_digest(
                session, DAY, secret=SECRET, base_url="https://library.example.jp"
            )
            seconds = time.perf_counter() - started
            digest_statements = statements[0]
            # Keep a sample pending for the mail measurement; the rest count as already sent.
            await session.execute(
                text(
                    "UPDATE notices SET status = 'sent' WHERE type = 'new_arrivals' AND id NOT IN "
                    "(SELECT id FROM notices WHERE type = 'new_arrivals' ORDER BY id LIMIT :n)"
                ),
                {"n": mails},
            )
            await session.execute(text("UPDATE notices SET next_attempt_at = '2000-01-01 00:00:00.000000'"))
            await session.commit()
    finally:
        await engine.dispose()
    mail_seconds, sent, received = await deliver_to_counting_smtp(url, directory)
    return {
        **{k: float(v) for k, v in counts.items()},
        "seconds": seconds,
        "statements": float(digest_statements),
        "mail_seconds": mail_seconds,
        "sent": float(sent["sent"]),
        "received": float(received),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bibs", type=int, default=1_000_000)
    parser.add_argument("--patrons", type=int, default=100_000)
    parser.add_argument("--mails", type=int, default=2000, help="digest mails actually sent (a sample)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    directory = Path(tempfile.mkdtemp(prefix="bench-digest-"))
    try:
        url, path = make_database(directory, "digest")
        started = time.perf_counter()
        made = setup(path, args.bibs, args.patrons, args.seed)
        setup_seconds = time.perf_counter() - started
        r = asyncio.run(measure(url, directory, args.mails))
        print(f"## New-arrival digest for {DAY} (set-up {setup_seconds:.0f} s)\n")
        print(
            "| catalogue | patrons | alerts | titles with a copy new this fortnight "
            "| new arrivals (all rules) "
            "| seconds | statements | statements/patron | mails queued |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        print(
            f"| {args.bibs:,} | {int(r['patrons']):,} | {int(r['alerts']):,} | {made['fresh_titles']:,} | "
            f"{int(r['arrivals']):,} | {r['seconds']:.1f} | {int(r['statements']):,} | "
            f"{r['statements'] / max(1, r['patrons']):.3f} | {int(r['new_arrivals']):,} |"
        )
        print()
        print("| digest mails sent | seconds | mails/s |")
        print("|---:|---:|---:|")
        print(f"| {int(r['sent']):,} | {r['mail_seconds']:.2f} | {r['sent'] / r['mail_seconds']:.0f} |")
        print()
        check = "ok" if r["sent"] == r["received"] else "MISMATCH"
        print(f"- the SMTP server received {int(r['received']):,} ({check})")
        print(
            f"- patrons considered: only those opted in with a confirmed address and at least one alert "
            f"({int(r['patrons']):,} of {args.patrons:,})"
        )
    finally:
        if args.keep:
            print(f"- files kept in {directory}")
        else:
            shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

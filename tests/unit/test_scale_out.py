"""Scale-out: two web processes and two arq workers on one database and one Redis share everything.

Nothing may live in one process's memory: a session made by one server is honoured by the other, the
cart follows the patron, a CSRF token from one is accepted by the other, log-in attempts are counted
across both, the hold limit holds under concurrent submissions to both, and two workers deliver each
mail once. Runs on the suite's backend (TEST_DATABASE): one SQLite file, or one PostgreSQL database.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from email import message_from_bytes, policy
from pathlib import Path

import httpx
from aiosmtpd.controller import Controller
from sqlalchemy import text

from tests.support import free_port, sync_engine

ROOT = Path(__file__).resolve().parents[2]
CSRF = re.compile(r'name="_csrf_token" value="([^"]+)"')
PENDING = text("SELECT count(*) FROM notices WHERE status = 'pending'")
ACTIVE = text(
    "SELECT count(*) FROM holds WHERE patron_id = :p AND status IN ('waiting', 'in_transit', 'ready')"
)


class CountingInbox:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.message_ids: list[str] = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        message = message_from_bytes(envelope.content, policy=policy.default)
        with self.lock:
            self.message_ids.append(str(message["Message-ID"]))
        return "250 OK"


def _csrf(client: httpx.Client, url: str) -> str:
    match = CSRF.search(client.get(url).text)
    assert match, url
    return match.group(1)


def _log_in(client: httpx.Client, form_from: str, post_to: str, card: str, password: str) -> httpx.Response:
    token = _csrf(client, form_from + "/login")
    return client.post(
        post_to + "/login",
        data={"_csrf_token": token, "card_number": card, "password": password, "next": "/mylibrary"},
    )


def test_two_web_processes_and_two_workers_share_everything(
    cluster: tuple[list[str], dict[str, str]], database_url: str
) -> None:  # `cluster`: two `python -m app serve` processes (tests/unit/conftest.py)
    (a, b), env = cluster
    engine = sync_engine(database_url)
    # Sessions and CSRF: the log-in form comes from A, the log-in goes to B, the pages to A again.
    patron = httpx.Client(timeout=30)
    assert _log_in(patron, a, b, "100000025", "taro-2026").status_code == 303
    assert "Taro" in patron.get(a + "/mylibrary?lang=en").text
    # The cart: filled on A, seen on B.
    with engine.connect() as con:
        bibs = (
            con.execute(
                text(
                    "SELECT id FROM bibs WHERE loanable AND control_number LIKE 'demo-ja-%' "
                    "AND id NOT IN (SELECT bib_id FROM holds WHERE status IN "
                    "('waiting', 'in_transit', 'ready')) "
                    "ORDER BY id LIMIT 16"
                )
            )
            .scalars()
            .all()
        )
        taro = con.execute(text("SELECT id FROM patrons WHERE card_number = '100000025'")).scalar_one()
        active = con.execute(ACTIVE, {"p": taro}).scalar_one()
        central = con.execute(text("SELECT id FROM branches WHERE code = 'central'")).scalar_one()
    token = _csrf(patron, a + "/cart")
    added = patron.post(a + "/cart", data={"_csrf_token": token, "bib_id": str(bibs[0])})
    assert added.status_code in (200, 303)
    assert "Cart (1)" in patron.get(b + "/cart?lang=en").text
    # The hold limit: 16 single-title submissions at once, half to each server, end at the limit.
    cookies = dict(patron.cookies)

    def place(n: int) -> int:
        with httpx.Client(timeout=60, cookies=cookies) as c:
            return c.post(
                (a, b)[n % 2] + "/holds/place",
                data={
                    "_csrf_token": token,
                    "bib": [str(bibs[n])],
                    "pickup": str(central),
                    "contact": "phone",
                },
            ).status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(place, range(16)))
    assert all(s in (200, 303) for s in statuses), statuses
    with engine.connect() as con:
        after = con.execute(ACTIVE, {"p": taro}).scalar_one()
    assert active < 10 and after == 10  # the default policy's limit, never more
    # Log-in attempts are counted across both servers: 5 wrong passwords, alternating, lock the 6th.
    attacker = httpx.Client(timeout=30)
    for n in range(5):
        wrong = _log_in(attacker, (a, b)[n % 2], (a, b)[n % 2], "100000017", "wrong-password")
        assert wrong.status_code == 400, wrong.status_code
    assert _log_in(attacker, b, a, "100000017", "hanako-2026").status_code == 429
    # Two workers, one inbox: 100 due notices (plus the hold mails above) are each sent once.
    with engine.begin() as con:
        hanako = con.execute(text("SELECT id FROM patrons WHERE card_number = '100000017'")).scalar_one()
        con.execute(
            text(
                "INSERT INTO notices (type, patron_id, dedup_key, payload, status, attempts, "
                "next_attempt_at) VALUES ('card_expiry', :p, :k, '{\"expires_on\": \"2030-01-01\"}', "
                "'pending', 0, '2020-01-01 00:00:00')"
            ),
            [{"p": hanako, "k": f"scale-out:{n}"} for n in range(100)],
        )
        pending = con.execute(PENDING).scalar_one()
    inbox = CountingInbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "app", "worker"],
            env={**env, "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp.port)},
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            with engine.connect() as con:
                left = con.execute(PENDING).scalar_one()
            if left == 0:
                break
            time.sleep(0.2)
        time.sleep(1)  # a duplicate would arrive now
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=15)
        smtp.stop()
    with engine.connect() as con:
        sent = con.execute(text("SELECT count(*) FROM notices WHERE status = 'sent'")).scalar_one()
    assert pending >= 100 and sent == pending
    assert len(inbox.message_ids) == sent and len(set(inbox.message_ids)) == sent  # none twice
    engine.dispose()

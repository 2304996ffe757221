"""Faults. Redis going away during requests: pages still render, actions say "try again shortly",
nothing is half-written, and everything works again when Redis is back. The mail server away for an
hour: every mail waits, then goes once.

Uses its own redis-server on a free port (the shared one is never touched).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from email import message_from_bytes
from email import policy as email_policy
from pathlib import Path

import pytest
import redis
from aiosmtpd.controller import Controller
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app import clock
from app.db import make_engine, make_sessionmaker
from app.main import create_app
from app.models import Loan, Notice, Patron
from app.tasks.mailer import deliver_pending
from tests.support import free_port, sync_engine
from tests.unit.conftest import add_due_notices, csrf_from, login, make_settings
from tests.unit.test_security_matrix import SECURITY_FIGURES


class PrivateRedis:
    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is missing: apt-get install -y redis-server")
        self.binary, self.directory, self.port = binary, directory, free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(self.url).ping()
                return
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "private redis-server did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def pause(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        if server.process is not None:
            server.resume()
        server.stop()


async def _renewals(db: AsyncSession) -> list[tuple[int, int]]:
    await db.rollback()
    hanako = await db.scalar(select(Patron.id).where(Patron.card_number == "100000017"))
    rows = await db.execute(select(Loan.id, Loan.renewals).where(Loan.patron_id == hanako).order_by(Loan.id))
    return [tuple(r) for r in rows]  # type: ignore[misc]


async def _renewable_loan(client: AsyncTestClient) -> tuple[str, int]:
    """Log Hanako in; her CSRF token and the first loan she can renew."""
    assert (await login(client)).status_code == 303
    page = await client.get("/loans?lang=en")
    return csrf_from(page.text), int(page.text.split('action="/loans/', 1)[1].split("/", 1)[0])


async def test_redis_away_then_back(
    private_redis: PrivateRedis, database_url: str, namespace: str, tmp_path: Path, db: AsyncSession
) -> None:
    app = create_app(make_settings(database_url, namespace, tmp_path, REDIS_URL=private_redis.url))
    faults = 0
    async with AsyncTestClient(app=app, base_url="http://testserver.local") as client:
        token, loan_id = await _renewable_loan(client)
        before = await _renewals(db)

        private_redis.stop()  # refused connections
        faults += 1
        for path in ("/", "/search?q=%E7%8C%AB", "/bibs/1", "/calendar"):
            page = await client.get(path)
            assert page.status_code == 200, f"{path} while Redis is away: {page.status_code}"
        for path in ("/mylibrary", "/loans"):
            page = await client.get(path + "?lang=en", follow_redirects=False)
            assert page.status_code == 503 and "try again" in page.text, path  # not "logged out"
            assert page.headers["retry-after"] == "30"
        for path, data in (
            (f"/loans/{loan_id}/renew", {}),
            ("/cart", {"bib_id": "1"}),
            ("/loans/renew-all", {}),
        ):
            for headers in ({}, {"HX-Request": "true"}):
                response = await client.post(
                    path, data={**data, "_csrf_token": token}, headers=headers, follow_redirects=False
                )
                assert response.status_code == 503, f"POST {path}: {response.status_code}"
        assert await _renewals(db) == before  # nothing half-written

        private_redis.start()  # back, but empty (no persistence): the session is gone, log in again
        faults += 1
        assert (await client.get("/mylibrary", follow_redirects=False)).status_code == 303
        assert (await login(client)).status_code == 303
        assert (await client.get("/mylibrary")).status_code == 200

        private_redis.pause()  # a Redis that hangs: answered within the client's timeout, not never
        faults += 1
        started = time.monotonic()
        page = await client.get("/mylibrary", follow_redirects=False)
        assert page.status_code == 503 and time.monotonic() - started < 10
        private_redis.resume()
        assert (await client.get("/mylibrary")).status_code == 200
    SECURITY_FIGURES["faults injected: Redis refused, restarted, hung (503, nothing written)"] = faults


class FlakyInbox:
    """A real SMTP server whose answer to MAIL FROM the test sets: "250" (up) or "421" (closing)."""

    def __init__(self) -> None:
        self.message_ids: list[str] = []
        self.accept_until = 10**9  # answer 421 once this many mails have arrived

    async def handle_MAIL(self, server, session, envelope, address, mail_options):  # type: ignore[no-untyped-def]
        if len(self.message_ids) >= self.accept_until:
            return "421 Service not available, closing transmission channel"
        envelope.mail_from = address
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        message = message_from_bytes(envelope.content, policy=email_policy.default)
        self.message_ids.append(str(message["Message-ID"]))
        return "250 OK"


async def test_smtp_down_for_an_hour_then_every_mail_once(
    database_url: str, namespace: str, tmp_path: Path, db: AsyncSession
) -> None:
    total = 120
    await add_due_notices(db, "outage", total)
    port = free_port()
    settings = make_settings(database_url, namespace, tmp_path, SMTP_HOST="127.0.0.1", SMTP_PORT=str(port))
    maker = make_sessionmaker(make_engine(database_url))

    async def states() -> dict[str, int]:
        await db.rollback()
        rows = await db.execute(
            select(Notice.status, func.count(), func.max(Notice.attempts))
            .where(Notice.dedup_key.like("outage:%"))
            .group_by(Notice.status)
        )
        return {f"{status} max attempts {most}": count for status, count, most in rows}

    # An hour with nothing listening on the mail port: the worker's minute job runs 60 times.
    when = dt.datetime(2026, 11, 21, 9, 0, tzinfo=clock.TZ)
    for _ in range(60):
        result = await deliver_pending(maker, settings, now=when)
        assert result["sent"] == 0 and result["not_sent"] == 0 and result["waiting"] > 0
        when += dt.timedelta(minutes=1)
    assert await states() == {"pending max attempts 0": total}  # nothing failed, no attempt used up
    # The server comes back, takes 30 mails, then says "421 closing" (a restart): the 30 are sent,
    # the rest wait again, still uncounted.
    inbox = FlakyInbox()
    inbox.accept_until = 30
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        result = await deliver_pending(maker, settings, now=when)
        assert result == {"sent": 30, "not_sent": 0, "waiting": total - 30}
        assert await states() == {"sent max attempts 1": 30, "pending max attempts 0": total - 30}
        inbox.accept_until = 10**9  # up for good
        when += dt.timedelta(minutes=1)
        assert (await deliver_pending(maker, settings, now=when))["sent"] == total - 30
        assert (await deliver_pending(maker, settings, now=when + dt.timedelta(minutes=1)))["sent"] == 0
    finally:
        controller.stop()
    assert await states() == {"sent max attempts 1": total}
    assert len(inbox.message_ids) == total and len(set(inbox.message_ids)) == total  # none lost, none twice
    SECURITY_FIGURES["mails through a simulated hour of SMTP outage and a 421 (lost 0, sent twice 0)"] = total


class LockHolder:
    """Another connection holding the write lock on Hanako's loan (SQLite: the database's one write
    lock; PostgreSQL: the loan row, FOR UPDATE) for `seconds`, from a thread."""

    def __init__(self, database_url: str, loan_id: int) -> None:
        self.database_url, self.loan_id = database_url, loan_id
        self.locked = threading.Event()

    def hold(self, seconds: float) -> threading.Thread:
        def run() -> None:
            engine = sync_engine(self.database_url)
            with engine.connect() as con:
                if engine.dialect.name == "sqlite":
                    con.exec_driver_sql("BEGIN IMMEDIATE")
                else:
                    con.execute(text("SELECT id FROM loans WHERE id = :id FOR UPDATE"), {"id": self.loan_id})
                self.locked.set()
                time.sleep(seconds)
                con.rollback()
            engine.dispose()
            self.locked.clear()

        thread = threading.Thread(target=run)
        thread.start()
        assert self.locked.wait(10)
        return thread


async def test_database_locked_waits_then_answers_503_and_changes_nothing(
    database_url: str, namespace: str, tmp_path: Path, db: AsyncSession
) -> None:
    app = create_app(make_settings(database_url, namespace, tmp_path, DB_LOCK_TIMEOUT="1"))
    async with AsyncTestClient(app=app, base_url="http://testserver.local") as client:
        token, loan_id = await _renewable_loan(client)
        before = await _renewals(db)
        holder = LockHolder(database_url, loan_id)
        # Locked for longer than DB_LOCK_TIMEOUT: the driver retries for a second, then the patron is
        # told to try again (503, Retry-After), plainly and to htmx, and nothing is written.
        for headers in ({}, {"HX-Request": "true"}):
            thread = holder.hold(4)
            started = time.monotonic()
            response = await client.post(
                f"/loans/{loan_id}/renew",
                data={"_csrf_token": token},
                headers=headers,
                follow_redirects=False,
            )
            waited = time.monotonic() - started
            thread.join()
            assert response.status_code == 503, response.text[:300]
            assert "try again" in response.text and response.headers["retry-after"] == "30"
            assert 0.8 < waited < 3.5, waited
            assert await _renewals(db) == before
        # Locked briefly (less than the timeout): the request waits for it and succeeds.
        thread = holder.hold(0.4)
        response = await client.post(
            f"/loans/{loan_id}/renew", data={"_csrf_token": token}, follow_redirects=False
        )
        thread.join()
        assert response.status_code == 303
        assert dict(await _renewals(db))[loan_id] == dict(before)[loan_id] + 1
    SECURITY_FIGURES["database locks: waited out, and past the timeout 503 (nothing written)"] = 3

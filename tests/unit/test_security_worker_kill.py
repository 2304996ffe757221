"""A worker killed by SIGKILL in the middle of 200 mails: after a restart each mail has gone exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from email import message_from_bytes, policy
from pathlib import Path

from aiosmtpd.controller import Controller
from sqlalchemy import text

from tests.support import REDIS_URL, clear_namespace, free_port, new_namespace, sync_engine

ROOT = Path(__file__).resolve().parents[2]
TOTAL = 200


class SlowGreetingInbox:
    """Keeps every message; answers EHLO slowly, so a worker spends its time waiting there."""

    def __init__(self) -> None:
        self.message_ids: list[str] = []
        self.lock = threading.Lock()
        self.greeting = threading.Event()

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # type: ignore[no-untyped-def]
        session.host_name = hostname
        self.greeting.set()
        await asyncio.sleep(0.02)
        self.greeting.clear()
        return responses

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        message = message_from_bytes(envelope.content, policy=policy.default)
        with self.lock:
            self.message_ids.append(message["Message-ID"])
        return "250 OK"


SENT = text("SELECT count(*) FROM notices WHERE status = 'sent'")


def test_sigkill_mid_batch_then_restart_sends_each_mail_once(database_url: str, tmp_path: Path) -> None:
    engine = sync_engine(database_url)
    with engine.begin() as con:
        hanako = con.execute(text("SELECT id FROM patrons WHERE card_number = '100000017'")).scalar_one()
        con.execute(
            text(
                "INSERT INTO notices (type, patron_id, dedup_key, payload, status, attempts, "
                "next_attempt_at) VALUES ('card_expiry', :patron, :key, "
                "'{\"expires_on\": \"2030-01-01\"}', 'pending', 0, '2020-01-01 00:00:00')"
            ),
            [{"patron": hanako, "key": f"kill-test:{n}"} for n in range(TOTAL)],
        )
    inbox = SlowGreetingInbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    namespace = new_namespace()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "VAR_DIR": str(tmp_path),
        "APP_ENV": "test",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp.port),
        "REDIS_URL": REDIS_URL,
        "REDIS_NAMESPACE": namespace,
    }
    try:
        worker = subprocess.Popen(
            [sys.executable, "-m", "app", "worker"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while len(inbox.message_ids) < 60:
            assert time.monotonic() < deadline and worker.poll() is None, "the worker did not start sending"
            time.sleep(0.01)
        # Kill it while it waits for a greeting: its last mail is delivered and recorded.
        with engine.connect() as con:
            while True:
                recorded = con.execute(
                    text("SELECT count(*) FROM notices WHERE status = 'sent'")
                ).scalar_one()
                con.rollback()  # a fresh snapshot for the next look
                if inbox.greeting.is_set() and recorded == len(inbox.message_ids):
                    os.kill(worker.pid, signal.SIGKILL)
                    break
                time.sleep(0.001)
        worker.wait(timeout=10)
        killed_at = len(inbox.message_ids)
        assert killed_at < TOTAL, "the worker finished before it could be killed"
        with engine.connect() as con:
            claimed = con.execute(
                text("SELECT count(*) FROM notices WHERE status = 'pending' AND claimed_by IS NOT NULL")
            ).scalar_one()
        assert claimed > 0  # the dead worker left claims behind
        # The dead worker's announcement expires 60 s after its last mail; take it away now instead
        # of waiting, then start a new worker.
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(f"{namespace}:mailer:*"):
            client.delete(key)
        # A new worker (its start-up run of send_notices) finishes the batch.
        restarted = subprocess.Popen(
            [sys.executable, "-m", "app", "worker"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 90
            while len(inbox.message_ids) < TOTAL and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(0.5)  # anything extra would show up now
        finally:
            restarted.terminate()
            restarted.wait(timeout=10)
        assert len(inbox.message_ids) == TOTAL and len(set(inbox.message_ids)) == TOTAL
        with engine.connect() as con:
            assert (
                con.execute(text("SELECT count(*) FROM notices WHERE status = 'sent'")).scalar_one() == TOTAL
            )
    finally:
        smtp.stop()
        clear_namespace(namespace)

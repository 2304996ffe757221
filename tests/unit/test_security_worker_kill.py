"""The mail worker SIGKILLed 20 times during one batch of 300 mails: every mail still goes exactly once.

One batch of notices is sent by `python -m app worker`, which is killed with SIGKILL (only the PID
this test started) 20 times, each time after it has sent a few more mails (3 to 12, varied so the
kills land at different places in claim_batch's claims of 50), and started again. A killed worker
leaves its claims behind; the test deletes its announcement (`<namespace>:mailer:<worker_id>`,
which would expire 60 s after its last mail) instead of waiting, so the next worker takes those
claims over at once. A last worker finishes the batch. Then the inbox must hold each notice's mail
once: nothing lost, nothing twice.

Where the kills land. SMTP leaves one gap that no worker can close: between the server's "250 OK"
for DATA (the mail is delivered) and the worker's commit of status 'sent', a window about one
commit long, the mail is out but the database does not know it; a worker killed in exactly that
window has its mail sent again by the next worker: there SMTP gives at-least-once, not
exactly-once. This test checks everything outside that window, so its kills land where no mail
is in it: the SMTP server holds the worker in its EHLO greeting (the start of its next mail), then
holds any other connection at DATA before accepting the message (a second run of the job, the
worker's minute cron, may be sending at the same time), and the kill comes only when every open
connection is held and the number of notices recorded 'sent' equals the number of messages in
the inbox. A message held at DATA when its worker dies was never accepted, so it was not
delivered; it goes after the restart.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from email import message_from_bytes, policy
from pathlib import Path

import redis
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP
from sqlalchemy import Engine, text

from app.services.notices import CLAIM_MARGIN_SECONDS
from tests.support import REDIS_URL, clear_namespace, free_port, new_namespace, sync_engine
from tests.unit.test_security_matrix import SECURITY_FIGURES

ROOT = Path(__file__).resolve().parents[2]
TOTAL = 300
KILLS = 20
# Mails each worker sends before it is killed: 3, 10, 7, 4, 11, 8, 5, 12, 9, 6, 3, ... (150 in all).
EXTRA_MAILS = [3 + (7 * k) % 10 for k in range(KILLS)]
KEY_PREFIX = "kill-test:"
SENT = text(f"SELECT count(*) FROM notices WHERE status = 'sent' AND dedup_key LIKE '{KEY_PREFIX}%'")
NOTICE_IN_MESSAGE_ID = re.compile(r"notice-(?:\d+\.)?(\d+)@")


class HoldingInbox:
    """Keeps every message. On request it holds clients: in their EHLO greeting (`hold_greetings`),
    and at DATA after the message has arrived but before it is accepted (`hold_data`). It counts the
    open connections, so the test can tell when every client is held and none is mid-way."""

    def __init__(self) -> None:
        self.message_ids: list[str] = []
        self.lock = threading.Lock()
        self.hold_greetings = threading.Event()
        self.hold_data = threading.Event()
        self.connections = 0
        self.held_in_greeting = 0
        self.held_at_data = 0

    def state(self) -> tuple[int, int, int]:
        """(open connections, held in a greeting, held at DATA)."""
        with self.lock:
            return self.connections, self.held_in_greeting, self.held_at_data

    async def _held(self, hold: threading.Event, counter: str) -> None:
        with self.lock:
            setattr(self, counter, getattr(self, counter) + 1)
        try:
            # The test's thread sets and clears the hold, so it is a threading.Event, polled here.
            while hold.is_set():  # noqa: ASYNC110
                await asyncio.sleep(0.001)
        finally:  # also when aiosmtpd cancels the handler because the (killed) client went away
            with self.lock:
                setattr(self, counter, getattr(self, counter) - 1)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # type: ignore[no-untyped-def]
        session.host_name = hostname
        if self.hold_greetings.is_set():
            await self._held(self.hold_greetings, "held_in_greeting")
        return responses

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        message_id = str(message_from_bytes(envelope.content, policy=policy.default)["Message-ID"])
        while True:
            with self.lock:  # the test sets hold_data under this lock: after that, nothing is accepted
                if not self.hold_data.is_set():
                    self.message_ids.append(message_id)
                    return "250 OK"
            await self._held(self.hold_data, "held_at_data")


class CountingSMTP(SMTP):
    def __init__(self, inbox: HoldingInbox) -> None:
        super().__init__(inbox)
        self.inbox = inbox

    def connection_made(self, transport):  # type: ignore[no-untyped-def]
        with self.inbox.lock:
            self.inbox.connections += 1
        super().connection_made(transport)

    def connection_lost(self, error):  # type: ignore[no-untyped-def]
        with self.inbox.lock:
            self.inbox.connections -= 1
        super().connection_lost(error)


class InboxController(Controller):
    def factory(self) -> SMTP:
        return CountingSMTP(self.handler)


def _sent(engine: Engine) -> int:
    with engine.connect() as con:
        return int(con.execute(SENT).scalar_one())


def _wait(
    condition: Callable[[], bool], what: str, seconds: float, worker: subprocess.Popen[bytes] | None = None
) -> None:
    """Poll until `condition`; fail after `seconds`, or at once if `worker` exits by itself."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert worker is None or worker.poll() is None, (
            f"the worker exited by itself ({worker.returncode}) {what}"
        )
        assert time.monotonic() < deadline, f"timed out {what}"
        time.sleep(0.002)


def test_worker_sigkilled_20_times_in_one_batch_sends_each_mail_once(
    database_url: str, tmp_path: Path
) -> None:
    engine = sync_engine(database_url)
    with engine.begin() as con:
        hanako = con.execute(text("SELECT id FROM patrons WHERE card_number = '100000017'")).scalar_one()
        con.execute(
            text(
                "INSERT INTO notices (type, patron_id, dedup_key, payload, status, attempts, "
                "next_attempt_at) VALUES ('card_expiry', :patron, :key, "
                "'{\"expires_on\": \"2030-01-01\"}', 'pending', 0, '2020-01-01 00:00:00')"
            ),
            [{"patron": hanako, "key": f"{KEY_PREFIX}{n}"} for n in range(TOTAL)],
        )
        notice_ids = set(
            con.execute(text(f"SELECT id FROM notices WHERE dedup_key LIKE '{KEY_PREFIX}%'")).scalars()
        )
    assert len(notice_ids) == TOTAL
    inbox = HoldingInbox()
    smtp = InboxController(inbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    namespace = new_namespace()
    client = redis.Redis.from_url(REDIS_URL)
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

    def start_worker() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "app", "worker"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    kills = 0
    killed_at: list[int] = []  # messages in the inbox at each kill
    worker: subprocess.Popen[bytes] | None = None
    last_kill = time.monotonic()
    try:
        for extra in EXTRA_MAILS:
            worker = start_worker()
            target = len(inbox.message_ids) + extra
            _wait(
                lambda target=target: len(inbox.message_ids) >= target,
                f"waiting for worker {kills + 1} to send mail {target}",
                60,
                worker,
            )
            # A safe point: the worker is held in a greeting (the start of its next mail), every other
            # connection is held too, and every mail the server accepted is recorded 'sent'.
            inbox.hold_greetings.set()
            _wait(lambda: inbox.state()[1] > 0, "for the worker to reach a greeting", 30, worker)
            with inbox.lock:
                inbox.hold_data.set()

            def safe() -> bool:
                connections, in_greeting, at_data = inbox.state()
                return connections == in_greeting + at_data and _sent(engine) == len(inbox.message_ids)

            _wait(safe, "for a safe point to kill the worker", 30, worker)
            os.kill(worker.pid, signal.SIGKILL)
            last_kill = time.monotonic()
            assert worker.wait(timeout=10) == -signal.SIGKILL
            worker = None
            kills += 1
            killed_at.append(len(inbox.message_ids))
            # Let go only once the dead worker's connections are closed (their handlers cancelled).
            _wait(lambda: inbox.state() == (0, 0, 0), "for the dead worker's connections to close", 10)
            inbox.hold_greetings.clear()
            inbox.hold_data.clear()
            assert killed_at[-1] < TOTAL, f"the batch was complete before kill {kills}"
            # Its announcement would expire 60 s after its last mail: take it away now instead.
            for key in client.scan_iter(f"{namespace}:mailer:*"):
                client.delete(key)
        # A claim made less than CLAIM_MARGIN_SECONDS before a worker's look is not taken over (see
        # claim_batch); let that pass since the last kill so the last worker's run sees every claim.
        time.sleep(max(0.0, last_kill + CLAIM_MARGIN_SECONDS + 0.2 - time.monotonic()))
        worker = start_worker()
        _wait(
            lambda: len(inbox.message_ids) >= TOTAL and _sent(engine) >= TOTAL,
            f"for the last worker to finish the batch ({len(inbox.message_ids)} mails so far)",
            90,
            worker,
        )
        time.sleep(0.5)  # anything extra would show up now
    finally:
        inbox.hold_greetings.clear()
        inbox.hold_data.clear()
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=10)
        smtp.stop()
        client.close()
        clear_namespace(namespace)
    assert kills == KILLS
    assert all(count < TOTAL for count in killed_at), killed_at  # every kill came before the end
    # Which notice each mail was for (its Message-ID names it): each exactly once.
    per_notice = Counter(
        int(found.group(1)) if (found := NOTICE_IN_MESSAGE_ID.search(mid)) else -1
        for mid in inbox.message_ids
    )
    twice = sorted(n for n, count in per_notice.items() if count > 1)
    lost = sorted(notice_ids - set(per_notice))
    assert not twice and not lost, f"sent twice: {twice}, lost: {lost}, kills at {killed_at}"
    assert len(inbox.message_ids) == TOTAL and len(set(inbox.message_ids)) == TOTAL
    assert set(per_notice) == notice_ids
    assert _sent(engine) == TOTAL
    SECURITY_FIGURES[f"worker SIGKILLs during one batch of {TOTAL} mails (lost 0, twice 0)"] = kills

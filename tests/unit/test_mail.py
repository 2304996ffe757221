"""Notices reach a real SMTP server (aiosmtpd) once each, in the patron's language, and survive outages."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import subprocess
import sys
from email import message_from_bytes
from email import policy as email_policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from redis.asyncio import Redis
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app import clock
from app.db import make_engine, make_sessionmaker
from app.models import Bib, Branch, Hold, Item, Notice, Patron, StaffUser
from app.policy import load_policy
from app.services import circulation, notices
from app.settings import Settings
from app.tasks.mailer import deliver_pending, send_notices
from tests.support import REDIS_URL, clear_namespace, free_port, new_namespace, sync_engine
from tests.unit.conftest import add_due_notices, make_settings

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = load_policy("default")
FRIDAY = dt.date(2026, 11, 20)


def _settings(database_url: str, namespace: str, tmp_path: Path, port: int) -> Settings:
    return make_settings(
        database_url,
        namespace,
        tmp_path,
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=str(port),
        MAIL_FROM="library@example.jp",
    )


async def _return_ginga(db: AsyncSession) -> int:
    """Hanako returns 銀河鉄道の夜 at central on a Friday: Sato's hold becomes ready (contact: email)."""
    central = await db.scalar(select(Branch.id).where(Branch.code == "central"))
    staff = await db.scalar(select(StaffUser.id))
    item = await db.scalar(
        select(Item).join(Bib).where(Bib.title == "銀河鉄道の夜", Item.status == "on_loan")
    )
    assert central and staff and item
    await circulation.checkin(
        db, barcode=item.barcode, branch_id=central, staff_id=staff, today=FRIDAY, policy=DEFAULT
    )
    hold_id = await db.scalar(select(Hold.id).where(Hold.status == "ready"))
    assert hold_id is not None
    return hold_id


async def test_pickup_mail_goes_the_next_morning_once(
    db: AsyncSession, database_url: str, namespace: str, tmp_path: Path, smtp
) -> None:  # type: ignore[no-untyped-def]
    controller, inbox = smtp
    settings = _settings(database_url, namespace, tmp_path, controller.port)
    maker = make_sessionmaker(make_engine(database_url))
    await _return_ginga(db)
    friday_evening = dt.datetime(2026, 11, 20, 20, 0)
    nothing = {"sent": 0, "not_sent": 0, "waiting": 0}
    assert await deliver_pending(maker, settings, now=friday_evening) == nothing
    saturday = dt.datetime(2026, 11, 21, 8, 30)
    assert await deliver_pending(maker, settings, now=saturday) == {"sent": 1, "not_sent": 0, "waiting": 0}
    assert await deliver_pending(maker, settings, now=saturday) == nothing  # never twice
    ((recipients, message),) = inbox.messages
    assert recipients == ["sato@example.jp"]
    assert message["Subject"] == "【市立図書館】予約資料のご用意ができました"  # Sato reads Japanese
    text = message.get_body(("plain",)).get_content()
    assert (
        "佐藤 優 様" in text and "銀河鉄道の夜" in text and "中央図書館" in text and "2026年11月29日" in text
    )
    html = message.get_body(("html",)).get_content()
    assert "銀河鉄道の夜" in html and "<p>" in html


async def test_english_patron_gets_english_mail(
    db: AsyncSession, database_url: str, namespace: str, tmp_path: Path, smtp
) -> None:  # type: ignore[no-untyped-def]
    controller, inbox = smtp
    await db.execute(
        update(Patron).where(Patron.card_number == "100000066").values(lang="en", name_en="Yu Sato")
    )
    await db.commit()
    await _return_ginga(db)
    maker = make_sessionmaker(make_engine(database_url))
    await deliver_pending(
        maker, _settings(database_url, namespace, tmp_path, controller.port), now=dt.datetime(2026, 11, 21, 9)
    )
    ((_, message),) = inbox.messages
    assert message["Subject"] == "[City Library] Your hold is ready for pickup"
    assert "Dear Yu Sato," in message.get_body(("plain",)).get_content()


async def test_smtp_down_keeps_the_mail_pending_then_sends_it(
    db: AsyncSession, database_url: str, namespace: str, tmp_path: Path, smtp
) -> None:  # type: ignore[no-untyped-def]
    controller, inbox = smtp
    await _return_ginga(db)
    maker = make_sessionmaker(make_engine(database_url))
    down = _settings(database_url, namespace, tmp_path, free_port())  # nothing listens there
    saturday = dt.datetime(2026, 11, 21, 9)
    assert await deliver_pending(maker, down, now=saturday) == {"sent": 0, "not_sent": 0, "waiting": 1}
    notice = await db.scalar(
        select(Notice).where(Notice.type == "pickup_ready").execution_options(populate_existing=True)
    )
    # The server was away, not the mail at fault: the attempt is not counted, the reason is kept.
    assert notice is not None and notice.status == "pending" and notice.attempts == 0
    assert notice.last_error and notice.last_error.startswith("mail server unavailable")
    up = _settings(database_url, namespace, tmp_path, controller.port)
    assert await deliver_pending(maker, up, now=saturday) == {"sent": 1, "not_sent": 0, "waiting": 0}
    assert len(inbox.messages) == 1


class RefusingInbox:
    """A mail server that is up but refuses the recipient with `answer` (450: try later; 550: never)."""

    def __init__(self, answer: str) -> None:
        self.answer = answer
        self.refused = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        self.refused += 1
        return self.answer


async def _refused(
    answer: str, db: AsyncSession, database_url: str, namespace: str, tmp_path: Path
) -> tuple[list[str], int]:
    """Run the mailer hourly against a server giving `answer`; the notice's statuses and the tries."""
    await _return_ginga(db)
    handler = RefusingInbox(answer)
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        maker = make_sessionmaker(make_engine(database_url))
        refusing = _settings(database_url, namespace, tmp_path, controller.port)
        when, statuses = dt.datetime(2026, 11, 21, 9), []
        for _ in range(notices.MAX_ATTEMPTS + 1):
            await deliver_pending(maker, refusing, now=when)
            when += dt.timedelta(hours=1)
            statuses.append(
                await db.scalar(select(Notice.status).execution_options(populate_existing=True)) or ""
            )
    finally:
        controller.stop()
    return statuses, handler.refused


async def test_a_recipient_refused_for_now_is_tried_five_times_then_failed(
    db: AsyncSession, database_url: str, namespace: str, tmp_path: Path
) -> None:
    statuses, tries = await _refused("450 Mailbox busy", db, database_url, namespace, tmp_path)
    assert statuses == ["pending"] * (notices.MAX_ATTEMPTS - 1) + ["failed", "failed"]
    assert tries == notices.MAX_ATTEMPTS


async def test_a_recipient_refused_for_good_fails_at_once(
    db: AsyncSession, database_url: str, namespace: str, tmp_path: Path
) -> None:
    statuses, tries = await _refused("550 No such user", db, database_url, namespace, tmp_path)
    assert statuses == ["failed"] * (notices.MAX_ATTEMPTS + 1) and tries == 1
    error = await db.scalar(select(Notice.last_error).execution_options(populate_existing=True))
    assert error and "550" in error


async def test_no_confirmed_address_is_marked_not_sent(
    db: AsyncSession, database_url: str, namespace: str, tmp_path: Path, smtp
) -> None:  # type: ignore[no-untyped-def]
    controller, inbox = smtp
    taro = await db.scalar(select(Patron.id).where(Patron.card_number == "100000025"))
    assert taro is not None
    await notices.queue(
        db,
        type="card_expiry",
        patron_id=taro,
        dedup_key="card_expiry:test",
        payload={"expires_on": "2026-12-31"},
        now=dt.datetime(2026, 11, 1),
    )
    await db.commit()
    maker = make_sessionmaker(make_engine(database_url))
    result = await deliver_pending(
        maker, _settings(database_url, namespace, tmp_path, controller.port), now=dt.datetime(2026, 11, 2)
    )
    assert result == {"sent": 0, "not_sent": 1, "waiting": 0} and not inbox.messages


async def test_dedup_key_makes_deciding_twice_harmless(db: AsyncSession) -> None:
    taro = await db.scalar(select(Patron.id).where(Patron.card_number == "100000025"))
    assert taro is not None
    first = await notices.queue(db, type="overdue", patron_id=taro, dedup_key="overdue:x")
    second = await notices.queue(db, type="overdue", patron_id=taro, dedup_key="overdue:x")
    await db.commit()
    assert (first, second) == (True, False)


def test_jobs_run_command_sends_the_days_mail(database_url: str, tmp_path: Path, smtp) -> None:  # type: ignore[no-untyped-def]
    controller, inbox = smtp
    namespace = new_namespace()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "VAR_DIR": str(tmp_path),
        "APP_ENV": "test",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(controller.port),
        "REDIS_URL": REDIS_URL,
        "REDIS_NAMESPACE": namespace,
    }
    # Hanako has opted in to due-date reminders; her renewable loan is due in 4 days (policy: 2 days before).
    with sync_engine(database_url).begin() as con:
        con.execute(text("UPDATE patrons SET notify_due = true WHERE card_number = '100000017'"))
        due = con.execute(
            text(
                "SELECT l.due_on FROM loans l JOIN items i ON i.id = l.item_id "
                "JOIN bibs b ON b.id = i.bib_id WHERE b.title = '吾輩は猫である'"
            )
        ).scalar_one()
    due = due if isinstance(due, dt.date) else dt.date.fromisoformat(due)
    day = (due - dt.timedelta(days=2)).isoformat()
    try:
        for _ in range(2):  # twice for the same day: one mail
            done = subprocess.run(
                [sys.executable, "-m", "app", "jobs", "run", "--date", day],
                env=env,
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == 0, done.stderr
        assert "due_reminder" in done.stdout
        reminders = [m for _, m in inbox.messages if "返却期限" in m["Subject"]]
        assert len(reminders) == 1 and "吾輩は猫である" in reminders[0].get_body(("plain",)).get_content()
        bad = subprocess.run(
            [sys.executable, "-m", "app", "jobs", "run", "--date", "tomorrow"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert bad.returncode == 2 and "YYYY-MM-DD" in bad.stderr
    finally:
        clear_namespace(namespace)


def test_real_arq_worker_sends_pending_mail(db_file_with_pickup: str, tmp_path: Path, smtp) -> None:  # type: ignore[no-untyped-def]
    controller, inbox = smtp
    namespace = new_namespace()
    env = {
        **os.environ,
        "DATABASE_URL": db_file_with_pickup,
        "VAR_DIR": str(tmp_path),
        "APP_ENV": "test",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(controller.port),
        "REDIS_URL": REDIS_URL,
        "REDIS_NAMESPACE": namespace,
    }
    try:
        done = subprocess.run(
            [sys.executable, "-m", "app", "worker", "--burst"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert done.returncode == 0, done.stderr
        assert [rcpt for rcpt, _ in inbox.messages] == [["sato@example.jp"]]
    finally:
        clear_namespace(namespace)


@pytest.fixture
async def db_file_with_pickup(db: AsyncSession, database_url: str) -> str:
    """A ready hold whose pickup mail is already due (its notification morning has passed)."""
    await _return_ginga(db)
    await db.execute(update(Notice).values(next_attempt_at=dt.datetime(2020, 1, 1)))
    await db.commit()
    return database_url


class SlowInbox:
    """Takes 50 ms to accept each mail, so runs of the mailer overlap."""

    def __init__(self) -> None:
        self.message_ids: list[str] = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.05)
        message = message_from_bytes(envelope.content, policy=email_policy.default)
        self.message_ids.append(str(message["Message-ID"]))
        return "250 OK"


async def test_a_run_ending_in_a_worker_does_not_give_away_another_runs_mails(
    db: AsyncSession, database_url: str, namespace: str, tmp_path: Path
) -> None:
    """A worker runs send_notices twice at once (its minute cron and a run the web side asked for).
    When the short run ends, the long run must still be seen alive: another worker looking a few
    seconds later takes none of its claims, and every mail goes once."""
    await add_due_notices(db, "overlap", 60)
    inbox = SlowInbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    redis = Redis.from_url(REDIS_URL)
    settings = _settings(database_url, namespace, tmp_path, controller.port)
    maker = make_sessionmaker(make_engine(database_url))
    ctx = {"sessionmaker": maker, "settings": settings, "redis": redis, "worker_id": "worker-one"}
    claimed = select(func.count()).where(Notice.claimed_by.is_not(None), Notice.status == "pending")
    try:
        long_run = asyncio.create_task(send_notices(ctx))  # claims the first 50
        while (await db.scalar(claimed) or 0) < 50:
            await db.rollback()
            await asyncio.sleep(0.01)
        short_run = await send_notices(ctx)  # the other 10, done while the long run still sends
        assert short_run["sent"] == 10 and not long_run.done()
        # Another worker, 5 s later (past the take-over margin), looks for mails whose sender is gone.
        other = await deliver_pending(
            maker, settings, now=clock.now() + dt.timedelta(seconds=5), redis=redis, worker_id="worker-two"
        )
        assert other["sent"] == 0
        assert (await long_run)["sent"] == 50
    finally:
        controller.stop()
        await redis.aclose()
    assert len(inbox.message_ids) == 60 and len(set(inbox.message_ids)) == 60

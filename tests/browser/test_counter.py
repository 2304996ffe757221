"""Counter to patron: a return fills Hanako's hold, the next day's mail arrives, she collects it."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from email import message_from_bytes, policy
from pathlib import Path

from aiosmtpd.controller import Controller
from playwright.sync_api import Browser, expect
from sqlalchemy import text

from tests.browser.conftest import DESKTOP, PHONE, ROOT, LiveServer, log_in
from tests.support import free_port, sync_engine


class Inbox:
    def __init__(self) -> None:
        self.messages: list = []  # type: ignore[type-arg]

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content, policy=policy.default)))
        return "250 OK"


def test_return_fills_a_hold_mail_next_day_then_collect(
    browser: Browser, server: LiveServer, tmp_path: Path
) -> None:
    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    try:
        staff = browser.new_context(viewport=DESKTOP, base_url=server.url, locale="en-GB").new_page()
        staff.goto("/staff/login?lang=en")
        staff.get_by_label("Username").fill("counter")
        staff.get_by_label("Password").fill("counter-2026")
        staff.get_by_role("button", name="Log in").click()
        expect(staff.locator("#counter-result")).to_be_attached()
        # Taro borrows volume 2 (Hanako is waiting for it), then brings it back.
        barcode = _barcode(server, "星の図書館 第2巻")
        staff.get_by_label("Card number").first.fill("100000025")
        staff.locator("#co-barcode").fill(barcode)
        staff.get_by_role("button", name="Check out").click()
        expect(staff.locator("#counter-result")).to_contain_text("Checked out")
        staff.locator("#ret-barcode").fill(barcode)
        staff.get_by_role("button", name="Return", exact=True).click()
        expect(staff.locator("#counter-result")).to_contain_text("Returned: put it on the hold shelf")
        expect(staff.locator("#hold-shelf")).to_contain_text("星の図書館 第2巻")

        # The next day's jobs send the pickup mail.
        tomorrow = (_today(server) + dt.timedelta(days=1)).isoformat()
        env = {**os.environ, **server.env, "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp.port)}
        done = subprocess.run(
            [sys.executable, "-m", "app", "jobs", "run", "--date", tomorrow],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        pickup = [m for rcpt, m in inbox.messages if "hanako@example.jp" in rcpt and "ご用意" in m["Subject"]]
        assert len(pickup) == 1 and "星の図書館 第2巻" in pickup[0].get_body(("plain",)).get_content()

        hanako = browser.new_context(viewport=PHONE, base_url=server.url, locale="en-GB").new_page()
        log_in(hanako)
        hanako.goto("/holds")
        row = hanako.locator("#holds li", has_text="星の図書館 第2巻")
        expect(row).to_contain_text("Ready for pickup")
        expect(row).to_contain_text("Collect by")
        expect(row).to_contain_text("please call or visit the library")

        staff.goto("/staff")
        staff.locator("#hold-shelf li", has_text="星の図書館 第2巻").get_by_role(
            "button", name=re.compile("^Collect")
        ).click()
        expect(staff.locator("#counter-result")).to_contain_text("Checked out")
        hanako.goto("/loans")
        expect(hanako.locator("#loans")).to_contain_text("星の図書館 第2巻")
    finally:
        smtp.stop()


def _today(server: LiveServer) -> dt.date:
    from app import clock

    return clock.today()


def _barcode(server: LiveServer, title: str) -> str:
    with sync_engine(server.env["DATABASE_URL"]).connect() as con:
        barcode = con.execute(
            text("SELECT i.barcode FROM items i JOIN bibs b ON b.id = i.bib_id WHERE b.title = :t"),
            {"t": title},
        ).scalar()
    return str(barcode)

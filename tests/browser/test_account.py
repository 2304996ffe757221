"""Account self-service on a phone: register a password, add an address and confirm it from the mail."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from email import message_from_bytes, policy

from aiosmtpd.controller import Controller
from playwright.sync_api import Page, expect
from sqlalchemy import text

from tests.browser.conftest import ROOT, LiveServer, log_in
from tests.support import free_port, sync_engine


class Inbox:
    def __init__(self) -> None:
        self.bodies: list[tuple[list[str], str]] = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        message = message_from_bytes(envelope.content, policy=policy.default)
        self.bodies.append((envelope.rcpt_tos, message.get_body(("plain",)).get_content()))
        return "250 OK"


def test_register_a_password_on_a_phone(phone: Page) -> None:
    page = phone
    page.goto("/login?lang=en")
    page.get_by_role("link", name="Register a password").click()
    page.get_by_label("I agree to the terms of use").check()
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("Card number").fill("100000058")
    page.get_by_label("Date of birth").fill("1990/4/1")
    page.get_by_label("Phone number").fill("092-000-0000")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("alert")).to_contain_text("8 digits")
    page.get_by_label("Date of birth").fill("19900401")
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("New password", exact=True).fill("ken2026a")
    page.get_by_label("Confirm new password").fill("ken2026a")
    page.get_by_role("button", name="Register a password").click()
    expect(page.get_by_text("Your password is registered")).to_be_visible()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


def test_add_an_address_and_confirm_it_from_the_mail(phone: Page, server: LiveServer) -> None:
    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    try:
        page = phone
        log_in(page)
        page.goto("/account/emails")
        page.get_by_label("New email address").fill("hanako,mobile@example.jp")
        page.get_by_role("button", name="Add email address").click()
        expect(page.get_by_role("alert")).to_contain_text("comma")
        page.get_by_label("New email address").fill("hanako.mobile@example.jp")
        page.get_by_role("button", name="Add email address").click()
        expect(page.locator("#emails")).to_contain_text("Waiting for confirmation")
        env = {**server.env, "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp.port), "BASE_URL": server.url}
        import os

        from app import clock

        done = subprocess.run(
            [sys.executable, "-m", "app", "jobs", "run", "--date", clock.today().isoformat()],
            env={**os.environ, **env},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        ((_rcpt, body),) = [m for m in inbox.bodies if "hanako.mobile@example.jp" in m[0]]
        link = re.search(re.escape(server.url) + r"(/account/emails/confirm\?token=[\w-]+)", body)
        assert link, body[:500]
        page.goto(link.group(1))
        page.get_by_role("button", name="Confirm").click()
        expect(page.locator("#emails li", has_text="hanako.mobile@example.jp")).to_contain_text("Confirmed")
    finally:
        smtp.stop()


def test_digital_card_page_has_no_errors_and_registers_offline_support(phone: Page) -> None:
    errors: list[str] = []
    phone.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    log_in(phone)
    phone.goto("/card")
    expect(phone.get_by_role("img", name=re.compile("100000017"))).to_be_visible()
    phone.wait_for_function("navigator.serviceWorker && navigator.serviceWorker.ready.then(() => true)")
    assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert not errors, errors


def test_register_online_upload_and_staff_approval(
    phone: Page, browser, server: LiveServer, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from PIL import Image

    from app import clock

    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    env = {
        **os.environ,
        **server.env,
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp.port),
        "BASE_URL": server.url,
    }

    def send_mail() -> None:
        done = subprocess.run(
            [sys.executable, "-m", "app", "jobs", "run", "--date", clock.today().isoformat()],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr

    try:
        page = phone
        page.goto("/login?lang=en")
        page.get_by_role("link", name="Register online").click()
        page.get_by_label("work in the city").check()
        for label, value in (
            ("Name", "田村 明"),
            ("Name (katakana)", "ﾀﾑﾗ ｱｷﾗ"),
            ("Date of birth", "19850505"),
            ("Address", "福岡市中央区天神1-1-1"),
            ("Phone number", "092-123-4567"),
            ("Email address", "akira@example.jp"),
            ("New password", "akira2026"),
            ("Confirm new password", "akira2026"),
        ):
            page.get_by_label(label, exact=True).fill(value)
        page.get_by_role("button", name="Register online").click()
        expect(page.get_by_role("status")).to_contain_text("We have mailed you a link")
        send_mail()
        link = re.search(re.escape(server.url) + r"(/register/confirm\?token=[\w-]+)", inbox.bodies[-1][1])
        assert link
        page.goto(link.group(1))
        page.get_by_role("button", name="Confirm").click()
        photo = tmp_path / "licence.jpg"
        Image.new("RGB", (60, 40), "white").save(photo, format="JPEG")
        fake = tmp_path / "scan.png"
        fake.write_bytes(b"%PDF-1.7 not an image")
        page.get_by_label("Document 1").set_input_files(str(fake))
        page.get_by_role("button", name="Upload documents").click()
        expect(page.get_by_role("alert")).to_contain_text("content is checked")
        page.get_by_label("Document 1").set_input_files(str(photo))
        page.get_by_role("button", name="Upload documents").click()
        expect(page.get_by_role("status")).to_contain_text("We have received your documents")

        staff = browser.new_context(base_url=server.url, locale="en-GB").new_page()
        staff.goto("/staff/login?lang=en")
        staff.get_by_label("Username").fill("counter")
        staff.get_by_label("Password").fill("counter-2026")
        staff.get_by_role("button", name="Log in").click()
        staff.get_by_role("link", name="Registrations").click()
        staff.get_by_role("link", name=re.compile("田村 明")).click()
        expect(staff.get_by_role("img", name="Identity document 1")).to_be_visible()
        staff.get_by_role("button", name="Approve").click()
        expect(staff.get_by_role("status").first).to_contain_text("Approved: card number")
        send_mail()
        card = re.search(r"(\d{9})", inbox.bodies[-1][1])
        assert card and "akira@example.jp" in inbox.bodies[-1][0]
        log_in(page, card=card.group(1), password="akira2026")
        expect(page.get_by_role("button", name="Log out")).to_be_visible()
    finally:
        smtp.stop()


def test_temporary_password_by_mail_then_forced_change(phone: Page, server: LiveServer) -> None:
    from app import clock

    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    try:
        page = phone
        page.goto("/login?lang=en")
        page.get_by_role("link", name="Apply for a temporary password").click()
        # The log-in page has a "Card number" field too: wait for the new page before filling.
        expect(page).to_have_url(re.compile(r"/password/temporary$"))
        page.get_by_label("Card number").fill("100000017")
        page.get_by_label("Registered email address").fill("hanako@example.jp")
        page.get_by_label("I agree to the terms of use").check()
        page.get_by_role("button", name="Apply for a temporary password").click()
        expect(page.get_by_role("status")).to_contain_text("we have mailed a temporary password")
        env = {**os.environ, **server.env, "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp.port)}
        done = subprocess.run(
            [sys.executable, "-m", "app", "jobs", "run", "--date", clock.today().isoformat()],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        with sync_engine(server.env["DATABASE_URL"]).connect() as con:
            rows = con.execute(
                text("SELECT type, status, next_attempt_at, claimed_by, last_error FROM notices")
            ).all()
        assert inbox.bodies, f"{done.stdout} {done.stderr} {rows}"
        password = re.search(r"(?:仮パスワード|Your temporary password is): (\S+)", inbox.bodies[-1][1])
        assert password
        log_in(page, password=password.group(1))
        expect(page).to_have_url(re.compile(r"/account/password$"))
        page.get_by_label("Current password").fill(password.group(1))
        page.get_by_label("New password", exact=True).fill("hanako2027")
        page.get_by_label("New password again").fill("hanako2027")
        page.get_by_role("button", name="Change password").click()
        expect(page.get_by_text("Your password has been changed.")).to_be_visible()
    finally:
        smtp.stop()

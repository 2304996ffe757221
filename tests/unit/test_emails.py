"""Email addresses: the seeds' common mistakes named, links mailed for real and confirmed by POST, once."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import make_engine, make_sessionmaker
from app.models import Email, Patron
from app.services.emails import EmailRefused, check_address
from app.tasks.mailer import deliver_pending
from tests.unit.conftest import Inbox, csrf_from, login, make_settings


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("ｈａｎａｋｏ@example.jp", "full_width"),
        ("hanako.example.jp", "no_at"),
        ("hana..ko@example.jp", "double_dot"),
        ("hanako.@example.jp", "dot_before_at"),
        ("hanako@example,jp", "comma"),
        ("hanako@", "invalid"),
        ("a" * 300 + "@example.jp", "too_long"),
    ],
)
def test_mistakes_are_named(address: str, reason: str) -> None:
    with pytest.raises(EmailRefused) as problem:
        check_address(address)
    assert problem.value.reason == reason


def test_good_address_passes() -> None:
    assert check_address("  taro.suzuki+lib@example.co.jp ") == "taro.suzuki+lib@example.co.jp"


async def _mail_the_link(database_url: str, namespace: str, tmp_path: Path, port: int, inbox: Inbox) -> str:
    settings = make_settings(
        database_url,
        namespace,
        tmp_path,
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=str(port),
        BASE_URL="http://testserver.local",
    )
    await deliver_pending(make_sessionmaker(make_engine(database_url)), settings)
    _rcpt, message = inbox.messages[-1]
    match = re.search(
        r"http://testserver\.local(/account/emails/confirm\?token=[\w-]+)",
        message.get_body(("plain",)).get_content(),
    )
    assert match, "no link in the mail"
    return match.group(1)


async def test_add_confirm_by_the_mailed_link(
    client: AsyncTestClient, db: AsyncSession, database_url: str, namespace: str, tmp_path: Path, smtp
) -> None:  # type: ignore[no-untyped-def]
    controller, inbox = smtp
    await client.get("/?lang=en")
    await login(client)
    page = await client.get("/account/emails")
    assert ">Add email address</button>" in page.text
    added = await client.post(
        "/account/emails",
        data={"_csrf_token": csrf_from(page.text), "address": "hanako.mobile@example.jp"},
        follow_redirects=False,
    )
    assert added.status_code == 303
    link = await _mail_the_link(database_url, namespace, tmp_path, controller.port, inbox)
    assert inbox.messages[-1][0] == ["hanako.mobile@example.jp"]  # only the new address gets the link
    stored = await db.scalar(select(Email).where(Email.address == "hanako.mobile@example.jp"))
    assert stored is not None and stored.confirmed_at is None and stored.token_hash
    assert link.split("token=")[1] not in (stored.token_hash or "")  # only a hash is kept
    opened = await client.get(link)  # opening the link changes nothing
    assert ">Confirm</button>" in opened.text
    assert (await db.scalar(select(Email.confirmed_at).where(Email.id == stored.id))) is None
    token = link.split("token=")[1]
    done = await client.post(
        "/account/emails/confirm",
        data={"_csrf_token": csrf_from(opened.text), "token": token},
        follow_redirects=False,
    )
    assert done.status_code == 303
    confirmed = await db.scalar(
        select(Email.confirmed_at).where(Email.id == stored.id).execution_options(populate_existing=True)
    )
    assert confirmed is not None
    again = await client.post(
        "/account/emails/confirm", data={"_csrf_token": csrf_from(opened.text), "token": token}
    )
    assert again.status_code == 400 and "not valid" in again.text


async def test_expired_and_foreign_tokens(
    client: AsyncTestClient, db: AsyncSession, database_url: str, namespace: str, tmp_path: Path, smtp
) -> None:  # type: ignore[no-untyped-def]
    controller, inbox = smtp
    await client.get("/?lang=en")
    await login(client)
    page = await client.get("/account/emails")
    await client.post(
        "/account/emails", data={"_csrf_token": csrf_from(page.text), "address": "x1@example.jp"}
    )
    link = await _mail_the_link(database_url, namespace, tmp_path, controller.port, inbox)
    token = link.split("token=")[1]
    # Another patron logged in cannot use Hanako's link.
    await client.post("/logout", data={"_csrf_token": csrf_from(page.text)})
    await login(client, card="100000025", password="taro-2026")
    csrf = csrf_from((await client.get("/account/emails")).text)
    foreign = await client.post("/account/emails/confirm", data={"_csrf_token": csrf, "token": token})
    assert foreign.status_code == 400 and "another patron" in foreign.text
    await db.execute(
        update(Email).where(Email.address == "x1@example.jp").values(token_expires_at=dt.datetime(2020, 1, 1))
    )
    await db.commit()
    expired = await client.get(link)
    assert expired.status_code == 400 and "expired" in expired.text
    assert (await client.get("/account/emails/confirm?token=nonsense")).status_code == 400


async def test_limit_duplicates_and_other_patrons_ids(client: AsyncTestClient, db: AsyncSession) -> None:
    await client.get("/?lang=en")
    await login(client)
    csrf = csrf_from((await client.get("/account/emails")).text)
    assert (
        await client.post("/account/emails", data={"_csrf_token": csrf, "address": "hanako@example.jp"})
    ).status_code == 400
    for n in (2, 3):
        await client.post("/account/emails", data={"_csrf_token": csrf, "address": f"h{n}@example.jp"})
    fourth = await client.post("/account/emails", data={"_csrf_token": csrf, "address": "h4@example.jp"})
    assert fourth.status_code == 400 and "up to 3 addresses" in fourth.text
    bad = await client.post("/account/emails", data={"_csrf_token": csrf, "address": "ｈ@example.jp"})
    assert "full-width" in bad.text
    sato = await db.scalar(select(Patron.id).where(Patron.card_number == "100000066"))
    sato_email = await db.scalar(select(Email.id).where(Email.patron_id == sato))
    for action in ("remove", "default"):
        assert (
            await client.post(f"/account/emails/{sato_email}/{action}", data={"_csrf_token": csrf})
        ).status_code == 404
    assert await db.scalar(select(Email.id).where(Email.id == sato_email)) is not None

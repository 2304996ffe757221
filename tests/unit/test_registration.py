"""Password registration online: identity, one neutral answer, rate limits, then logged in."""

from __future__ import annotations

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Notice, Patron
from tests.unit.conftest import csrf_from, login

KEN = {"card_number": "100000058", "birth": "19900401", "phone": "092-000-0000", "kana": "ヤマモト ケン"}


async def _agree(client: AsyncTestClient) -> str:
    page = await client.get("/password/register?lang=en")
    assert ">Register a password</h1>" in page.text
    csrf = csrf_from(page.text)
    await client.post("/password/register", data={"_csrf_token": csrf, "agree": "yes"})
    return csrf


async def _identity(client: AsyncTestClient, csrf: str, **values: str):  # type: ignore[no-untyped-def]
    return await client.post(
        "/password/register/identity", data={"_csrf_token": csrf, **KEN, **values}, follow_redirects=False
    )


async def test_login_page_links(client: AsyncTestClient) -> None:
    page = await client.get("/login?lang=en")
    for text in ("Register a password", "Forgot your password?", "Apply for a temporary password"):
        assert f">{text}</a>" in page.text


async def test_terms_first(client: AsyncTestClient) -> None:
    page = await client.get("/password/register/identity", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/password/register"
    csrf = csrf_from((await client.get("/password/register?lang=en")).text)
    refused = await client.post("/password/register", data={"_csrf_token": csrf})
    assert refused.status_code == 400 and "agree" in refused.text


async def test_register_and_be_logged_in(client: AsyncTestClient, db: AsyncSession) -> None:
    csrf = await _agree(client)
    full_width = {
        "card_number": "１００００００５８",
        "birth": "１９９００４０１",
        "phone": "０９２－０００－００００",
    }
    response = await _identity(client, csrf, **full_width)
    assert response.status_code == 303 and response.headers["location"] == "/password/register/new"
    page = await client.get("/password/register/new")
    assert "Confirm new password" in page.text
    bad = await client.post(
        "/password/register/new",
        data={"_csrf_token": csrf, "new_password": "ken2026a", "confirm_password": "ken2026b"},
    )
    assert bad.status_code == 400 and "do not match" in bad.text
    done = await client.post(
        "/password/register/new",
        data={"_csrf_token": csrf, "new_password": "ken2026a", "confirm_password": "ken2026a"},
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"] == "/mylibrary"
    assert "Your password is registered" in (await client.get("/mylibrary")).text
    state = await db.scalar(select(Patron.password_state).where(Patron.card_number == "100000058"))
    assert state == "permanent"
    await client.post("/logout", data={"_csrf_token": csrf})
    assert (await login(client, card="100000058", password="ken2026a")).status_code == 303


@pytest.mark.parametrize(
    "values",
    [{"card_number": "999999999"}, {"birth": "19900402"}, {"phone": "092-000-0001"}],
)
async def test_any_mismatch_reads_the_same(client: AsyncTestClient, values: dict[str, str]) -> None:
    csrf = await _agree(client)
    response = await _identity(client, csrf, **values)
    assert response.status_code == 400 and "These details do not match our records." in response.text
    body = response.text.split('<main id="main"', 1)[1]
    for typed in values.values():
        body = body.replace(typed, "X")
    for typed in KEN.values():
        body = body.replace(typed, "X")
    reference = await _identity(client, csrf, card_number="999999998")
    expected = reference.text.split('<main id="main"', 1)[1]
    for typed in [*KEN.values(), "999999998"]:
        expected = expected.replace(typed, "X")
    assert body == expected


@pytest.mark.parametrize("birth", ["1990/4/1", "19900431", "20900101", "1990041", "abcdefgh"])
async def test_bad_birth_dates_are_named(client: AsyncTestClient, birth: str) -> None:
    csrf = await _agree(client)
    response = await _identity(client, csrf, birth=birth)
    assert response.status_code == 400 and "8 digits" in response.text


async def test_expired_card_is_told_to_visit(client: AsyncTestClient, db: AsyncSession) -> None:
    jiro = await db.scalar(select(Patron).where(Patron.card_number == "100000041"))
    assert jiro is not None
    csrf = await _agree(client)
    response = await _identity(
        client, csrf, card_number="100000041", birth=jiro.birth_date.strftime("%Y%m%d"), phone=jiro.phone
    )
    assert response.status_code == 400 and "Your card has expired" in response.text


async def test_rate_limit_locks_the_attacker_not_the_account(client: AsyncTestClient, settings) -> None:  # type: ignore[no-untyped-def]
    csrf = await _agree(client)
    for _ in range(5):
        await _identity(client, csrf, birth="19800101")
    limited = await _identity(client, csrf)
    assert limited.status_code == 429
    from app.main import create_app

    async with AsyncTestClient(app=create_app(settings), base_url="http://testserver.local") as other:
        assert (await login(other)).status_code == 303  # Hanako can still log in


async def test_koga_asks_the_kana_name(database_url: str, namespace: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from app.main import create_app
    from tests.unit.conftest import make_settings

    settings = make_settings(database_url, namespace, tmp_path, LIBRARY_POLICY="koga")
    async with AsyncTestClient(app=create_app(settings), base_url="http://testserver.local") as koga:
        csrf = await _agree(koga)
        page = await koga.get("/password/register/identity")
        assert "Name (katakana)" in page.text
        hiragana = await _identity(koga, csrf, kana="やまもと けん")
        assert hiragana.status_code == 400 and "not hiragana" in hiragana.text
        half_width = await _identity(koga, csrf, kana="ﾔﾏﾓﾄ ｹﾝ")
        assert half_width.status_code == 303


async def test_temporary_password_request_answers_the_same(client: AsyncTestClient, db: AsyncSession) -> None:
    page = await client.get("/password/temporary?lang=en")
    csrf = csrf_from(page.text)
    known = await client.post(
        "/password/temporary",
        data={"_csrf_token": csrf, "agree": "yes", "card_number": "100000017", "email": "hanako@example.jp"},
    )
    unknown = await client.post(
        "/password/temporary",
        data={"_csrf_token": csrf, "agree": "yes", "card_number": "999999999", "email": "x@example.jp"},
    )
    assert known.status_code == unknown.status_code == 200
    assert known.text.split('<main id="main"', 1)[1] == unknown.text.split('<main id="main"', 1)[1]
    notice = await db.scalar(select(Notice).where(Notice.type == "temporary_password"))
    assert notice is not None and "password" not in notice.payload  # never stored in clear


async def test_mailed_temporary_password_logs_in_to_the_forced_change(
    client: AsyncTestClient, database_url: str, namespace: str, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    import re

    from aiosmtpd.controller import Controller

    from app.db import make_engine, make_sessionmaker
    from app.tasks.mailer import deliver_pending
    from tests.support import free_port
    from tests.unit.conftest import Inbox, make_settings

    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    try:
        csrf = csrf_from((await client.get("/password/temporary?lang=en")).text)
        await client.post(
            "/password/temporary",
            data={
                "_csrf_token": csrf,
                "agree": "yes",
                "card_number": "100000017",
                "email": "hanako@example.jp",
            },
        )
        settings = make_settings(
            database_url, namespace, tmp_path, SMTP_HOST="127.0.0.1", SMTP_PORT=str(smtp.port)
        )
        await deliver_pending(make_sessionmaker(make_engine(database_url)), settings)
        ((rcpt, message),) = inbox.messages
        assert rcpt == ["hanako@example.jp"]
        match = re.search(r"仮パスワード: (\S+)", message.get_body(("plain",)).get_content())
        assert match
        response = await login(client, password=match.group(1))
        assert response.status_code == 303 and response.headers["location"] == "/account/password"
    finally:
        smtp.stop()


async def test_koga_email_options_apply_on_confirmation(client: AsyncTestClient, db: AsyncSession) -> None:
    import datetime as dt

    from app import clock
    from app.models import Email, Hold
    from app.services import emails

    sato = await db.scalar(select(Patron.id).where(Patron.card_number == "100000066"))
    assert sato is not None
    from app.policy import load_policy

    email_id = await emails.add(
        db,
        sato,
        "sato.new@example.jp",
        policy=load_policy("default"),
        now=clock.now(),
        make_default=True,
        for_holds=True,
    )
    token = await emails.issue_token(db, email_id, now=clock.now())
    assert token
    await emails.confirm(db, token, now=clock.now() + dt.timedelta(minutes=1), patron_id=sato)
    rows = (
        await db.execute(
            select(Email.address, Email.is_default)
            .where(Email.patron_id == sato)
            .execution_options(populate_existing=True)
        )
    ).all()
    assert dict(rows) == {"sato@example.jp": False, "sato.new@example.jp": True}
    hold_email = await db.scalar(
        select(Hold.email_id).where(Hold.patron_id == sato).execution_options(populate_existing=True)
    )
    assert hold_email == email_id

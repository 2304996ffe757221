"""The counter over HTTP: staff log-in, the patrons' 403, check out and return three ways, calendar."""

import re

from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Bib, ClosedDay, Hold, Item, Patron, StaffAudit
from tests.unit.conftest import csrf_from, login, token

HX = {"HX-Request": "true"}


async def staff_login(client: AsyncTestClient, username: str = "counter", password: str = "counter-2026"):  # type: ignore[no-untyped-def]
    page = await client.get("/staff/login?lang=en")
    return await client.post(
        "/staff/login",
        data={"_csrf_token": csrf_from(page.text), "username": username, "password": password},
        follow_redirects=False,
    )


async def _barcode(db: AsyncSession, title: str, status: str) -> str:
    code = await db.scalar(select(Item.barcode).join(Bib).where(Bib.title == title, Item.status == status))
    assert code is not None
    return code


async def test_staff_login_page_and_bad_password(client: AsyncTestClient) -> None:
    page = await client.get("/staff/login?lang=en")
    assert (
        '<label for="username">Username</label>' in page.text
        and '<label for="password">Password</label>' in page.text
    )
    bad = await staff_login(client, password="wrong")
    assert bad.status_code == 400 and "The username or password is not correct." in bad.text
    ok = await staff_login(client)
    assert ok.status_code == 303 and ok.headers["location"] == "/staff"
    counter = await client.get("/staff")
    for name in ("Check out", "Return", "Receive", "Issue temporary password"):
        assert f">{name}</button>" in counter.text
    assert 'id="counter-result"' in counter.text and 'id="hold-shelf"' in counter.text
    assert "Card number" in counter.text and "Item barcode" in counter.text


async def test_guests_are_sent_to_staff_login_and_patrons_refused(client: AsyncTestClient) -> None:
    response = await client.get("/staff", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/staff/login"
    await login(client)
    assert (await client.get("/staff", follow_redirects=False)).status_code == 403
    csrf = await token(client, "/loans")
    assert (await client.post("/staff/return", data={"_csrf_token": csrf, "barcode": "1"})).status_code == 403


async def test_return_and_collect_three_ways(client: AsyncTestClient, db: AsyncSession) -> None:
    await staff_login(client)
    csrf = await token(client, "/staff")
    code = await _barcode(db, "銀河鉄道の夜", "on_loan")
    block = await client.post("/staff/return", data={"barcode": code}, headers={**HX, "x-csrftoken": csrf})
    assert block.status_code == 200 and block.text.lstrip().startswith('<div id="counter">')
    assert "Returned: put it on the hold shelf" in block.text and "佐藤 優" in block.text
    again = await client.post(
        "/staff/return", data={"_csrf_token": csrf, "barcode": code}, follow_redirects=False
    )
    assert again.status_code == 303
    page = await client.get("/staff")
    assert "This item is not on loan." in page.text
    hold_id = await db.scalar(select(Hold.id).where(Hold.status == "ready"))
    assert f"/staff/holds/{hold_id}/collect" in page.text
    collected = await client.post(
        f"/staff/holds/{hold_id}/collect", data={"_csrf_token": csrf}, headers={**HX, "x-csrftoken": csrf}
    )
    assert "Checked out" in collected.text
    assert (
        await db.scalar(
            select(Hold.status).where(Hold.id == hold_id).execution_options(populate_existing=True)
        )
    ) == "collected"
    actions = (await db.scalars(select(StaffAudit.action).order_by(StaffAudit.id))).all()
    assert actions[-3:] == ["return", "checkout", "checkout"] or "return" in actions


async def test_checkout_refusal_and_bad_barcode(client: AsyncTestClient, db: AsyncSession) -> None:
    await staff_login(client)
    csrf = await token(client, "/staff")
    response = await client.post(
        "/staff/checkout",
        data={"card_number": "100000041", "barcode": "200000001"},
        headers={**HX, "x-csrftoken": csrf},
    )
    assert response.status_code == 400 and "The card has expired" in response.text
    response = await client.post(
        "/staff/checkout",
        data={"card_number": "100000017", "barcode": "<script>"},
        headers={**HX, "x-csrftoken": csrf},
    )
    assert (
        response.status_code == 400
        and "No item has this barcode." in response.text
        and "<script>" not in response.text.replace("&lt;script&gt;", "")
    )


async def test_temporary_password_shown_once(client: AsyncTestClient, db: AsyncSession) -> None:
    await staff_login(client)
    csrf = await token(client, "/staff")
    page = await client.post(
        "/staff/temporary-password", data={"_csrf_token": csrf, "card_number": "100000058"}
    )
    match = re.search(r'class="password">([^<]+)<', page.text)
    assert page.status_code == 200 and match
    state = await db.scalar(select(Patron.password_state).where(Patron.card_number == "100000058"))
    assert state == "temporary"
    assert 'class="password"' not in (await client.get("/staff")).text


async def test_closed_days_add_and_remove(client: AsyncTestClient, db: AsyncSession) -> None:
    await staff_login(client)
    csrf = await token(client, "/staff/calendar")
    await client.post(
        "/staff/calendar", data={"_csrf_token": csrf, "branch": "2", "day": "2099-05-05", "note": "点検"}
    )
    day = await db.scalar(select(ClosedDay).where(ClosedDay.note == "点検"))
    assert day is not None and str(day.day) == "2099-05-05"
    page = await client.get("/staff/calendar")
    assert "点検" in page.text
    bad = await client.post(
        "/staff/calendar", data={"_csrf_token": csrf, "branch": "999", "day": "2099-05-06"}
    )
    assert bad.status_code in (200, 303)
    await client.post(f"/staff/calendar/{day.id}/delete", data={"_csrf_token": csrf})
    assert (
        await db.scalar(
            select(ClosedDay.id).where(ClosedDay.note == "点検").execution_options(populate_existing=True)
        )
        is None
    )
    assert (await client.post("/staff/calendar/999999/delete", data={"_csrf_token": csrf})).status_code == 404


async def test_staff_log_in_is_rate_limited(client: AsyncTestClient) -> None:
    for _ in range(5):
        assert (await staff_login(client, password="wrong")).status_code == 400
    assert (await staff_login(client)).status_code == 429

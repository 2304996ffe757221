"""Notice settings: the patron's choices are saved, respected by the mail, and pre-fill the holds form."""

import datetime as dt

from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Bib, Branch, Item, Notice, Patron, StaffUser
from app.policy import load_policy
from app.services import circulation
from tests.unit.conftest import csrf_from, login


async def test_settings_page_saves_choices_and_defaults(client: AsyncTestClient, db: AsyncSession) -> None:
    await client.get("/?lang=en")
    await login(client)
    page = await client.get("/account/notices")
    assert page.status_code == 200 and "Items due soon" in page.text
    west = await db.scalar(select(Branch.id).where(Branch.code == "west"))
    response = await client.post(
        "/account/notices",
        data={
            "_csrf_token": csrf_from(page.text),
            "notice": ["due_reminder", "card_expiry"],
            "pickup": str(west),
            "contact": "phone",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    patron = await db.scalar(
        select(Patron).where(Patron.card_number == "100000017").execution_options(populate_existing=True)
    )
    assert patron is not None
    assert (patron.notify_due, patron.notify_expiry, patron.notify_overdue, patron.notify_pickup) == (
        True,
        True,
        False,
        False,
    )
    assert (patron.home_branch_id, patron.default_contact) == (west, "phone")
    assert "Your settings have been saved." in (await client.get("/account/notices")).text
    # The holds form is pre-filled with them.
    confirm = await client.post("/holds/confirm", data={"_csrf_token": csrf_from(page.text), "bib": ["1"]})
    assert (
        f'<option value="{west}" selected>' in confirm.text
        and '<option value="phone" selected>' in confirm.text
    )


async def test_forged_settings_are_refused(client: AsyncTestClient, db: AsyncSession) -> None:
    await client.get("/?lang=en")
    await login(client)
    page = await client.get("/account/notices")
    for fields in ({"pickup": "999", "contact": "phone"}, {"pickup": "1", "contact": "pigeon"}):
        response = await client.post("/account/notices", data={"_csrf_token": csrf_from(page.text), **fields})
        assert response.status_code == 400 and 'role="alert"' in response.text
    assert (await db.scalar(select(Patron.default_contact).where(Patron.card_number == "100000017"))) is None


async def test_pickup_mail_respects_the_choice_where_the_library_allows(db: AsyncSession) -> None:
    await db.execute(
        Patron.__table__.update().where(Patron.card_number == "100000066").values(notify_pickup=False)
    )
    await db.commit()
    central = await db.scalar(select(Branch.id).where(Branch.code == "central"))
    staff = await db.scalar(select(StaffUser.id))
    item = await db.scalar(
        select(Item).join(Bib).where(Bib.title == "銀河鉄道の夜", Item.status == "on_loan")
    )
    assert central and staff and item
    await circulation.checkin(
        db,
        barcode=item.barcode,
        branch_id=central,
        staff_id=staff,
        today=dt.date(2026, 11, 20),
        policy=load_policy("default"),
    )
    assert await db.scalar(select(Notice.id).where(Notice.type == "pickup_ready")) is None


async def test_koga_always_sends_the_pickup_mail(db: AsyncSession) -> None:
    await db.execute(
        Patron.__table__.update().where(Patron.card_number == "100000066").values(notify_pickup=False)
    )
    await db.commit()
    central = await db.scalar(select(Branch.id).where(Branch.code == "central"))
    staff = await db.scalar(select(StaffUser.id))
    item = await db.scalar(
        select(Item).join(Bib).where(Bib.title == "銀河鉄道の夜", Item.status == "on_loan")
    )
    assert central and staff and item
    await circulation.checkin(
        db,
        barcode=item.barcode,
        branch_id=central,
        staff_id=staff,
        today=dt.date(2026, 11, 20),
        policy=load_policy("koga"),
    )
    assert await db.scalar(select(Notice.id).where(Notice.type == "pickup_ready")) is not None

"""The counter engine against a real SQLite file: lending rules, allocation, transit, expiry, races."""

import asyncio
import datetime as dt

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app import clock
from app.db import make_engine, make_sessionmaker
from app.models import Bib, Branch, ClosedDay, Hold, Item, Loan, Notice, Patron, StaffUser
from app.policy import load_policy
from app.services import circulation
from app.services.circulation import CirculationRefused
from app.services.passwords import check_password_rules

DEFAULT = load_policy("default")


async def _ids(db: AsyncSession) -> dict[str, int]:
    rows = {b.code: b.id for b in (await db.scalars(select(Branch))).all()}
    rows["staff"] = await db.scalar(select(StaffUser.id)) or 0
    return rows


async def _item_of(db: AsyncSession, title: str, status: str | None = None) -> Item:
    query = (
        select(Item)
        .join(Bib, Bib.id == Item.bib_id)
        .where(Bib.title == title)
        .order_by(Item.id)
        .execution_options(populate_existing=True)
    )
    if status:
        query = query.where(Item.status == status)
    item = await db.scalar(query)
    assert item is not None
    return item


@pytest.mark.parametrize(
    ("card", "title", "preset", "reason"),
    [
        ("999999999", "こころ", "default", "unknown_patron"),
        ("100000041", "こころ", "default", "expired_card"),
        ("100000025", "こころ", "fukuoka", "overdue"),
        ("100000017", "日本語大辞典 第二版", "default", "not_loanable"),
        ("100000066", "吾輩は猫である", "default", "on_loan"),
    ],
)
async def test_checkout_refusals(db: AsyncSession, card: str, title: str, preset: str, reason: str) -> None:
    ids = await _ids(db)
    item = await _item_of(db, title)
    with pytest.raises(CirculationRefused) as refused:
        await circulation.checkout(
            db,
            card=card,
            barcode=item.barcode,
            branch_id=ids["central"],
            staff_id=ids["staff"],
            today=clock.today(),
            policy=load_policy(preset),
        )
    assert refused.value.reason == reason
    await db.rollback()


async def test_unknown_or_malformed_barcode(db: AsyncSession) -> None:
    ids = await _ids(db)
    for code in ("000000000", "", "abc", "x" * 500):
        with pytest.raises(CirculationRefused) as refused:
            await circulation.checkin(
                db,
                barcode=code,
                branch_id=ids["central"],
                staff_id=ids["staff"],
                today=clock.today(),
                policy=DEFAULT,
            )
        assert refused.value.reason == "unknown_item"
        await db.rollback()


async def test_checkout_due_date_skips_closed_days(db: AsyncSession) -> None:
    ids = await _ids(db)
    today = dt.date(2026, 11, 17)  # Tuesday; +14 = Tuesday 12-01
    db.add(ClosedDay(branch_id=ids["west"], day=dt.date(2026, 12, 1)))
    await db.commit()
    item = await _item_of(db, "こころ")
    outcome = await circulation.checkout(
        db,
        card="１００００００２５",
        barcode=item.barcode,
        branch_id=ids["west"],
        staff_id=ids["staff"],
        today=today,
        policy=DEFAULT,
    )
    assert outcome.action == "checked_out" and outcome.due_on == dt.date(2026, 12, 2)


async def test_return_gives_the_copy_to_the_first_waiting_hold_with_a_pickup_mail(db: AsyncSession) -> None:
    ids = await _ids(db)
    today = dt.date(2026, 11, 20)  # Friday
    item = await _item_of(db, "銀河鉄道の夜", "on_loan")  # Hanako's copy; Sato waits, pickup at central
    outcome = await circulation.checkin(
        db, barcode=item.barcode, branch_id=ids["central"], staff_id=ids["staff"], today=today, policy=DEFAULT
    )
    assert outcome.action == "to_hold_shelf" and outcome.hold_patron == "佐藤 優"
    hold = await db.scalar(
        select(Hold).where(Hold.item_id == item.id).execution_options(populate_existing=True)
    )
    assert hold is not None and hold.status == "ready" and hold.ready_on == today
    # Mail on Saturday 21st; seven open days from Sunday, central closed on Mondays: 22,24,25,26,27,28,29.
    assert hold.notified_on == dt.date(2026, 11, 21) and hold.shelf_until == dt.date(2026, 11, 29)
    notice = await db.scalar(select(Notice).where(Notice.hold_id == hold.id))
    assert (
        notice is not None
        and notice.type == "pickup_ready"
        and notice.dedup_key == f"pickup_ready:hold:{hold.id}"
    )
    loan = await db.scalar(select(Loan).where(Loan.item_id == item.id))
    assert loan is not None and loan.returned_on == today
    assert (await db.get_one(Item, item.id, populate_existing=True)).status == "on_hold_shelf"
    # Someone else cannot borrow it; Sato can (collect), which fulfils the hold.
    with pytest.raises(CirculationRefused) as refused:
        await circulation.checkout(
            db,
            card="100000025",
            barcode=item.barcode,
            branch_id=ids["central"],
            staff_id=ids["staff"],
            today=today,
            policy=DEFAULT,
        )
    assert refused.value.reason == "held_for_other"
    hold_id = hold.id
    await db.rollback()  # (expires every loaded object: use the saved id)
    collected = await circulation.collect(
        db, hold_id=hold_id, branch_id=ids["central"], staff_id=ids["staff"], today=today, policy=DEFAULT
    )
    assert collected.action == "checked_out" and collected.patron_name == "佐藤 優"
    assert (await db.get_one(Hold, hold_id, populate_existing=True)).status == "collected"


async def test_return_elsewhere_goes_in_transit_then_receive_makes_it_ready(db: AsyncSession) -> None:
    ids = await _ids(db)
    today = clock.today()
    item = await _item_of(db, "銀河鉄道の夜", "on_loan")
    barcode = item.barcode
    outcome = await circulation.checkin(
        db, barcode=barcode, branch_id=ids["west"], staff_id=ids["staff"], today=today, policy=DEFAULT
    )
    assert outcome.action == "to_transit"
    with pytest.raises(CirculationRefused):
        await circulation.receive(
            db,
            barcode=(await _item_of(db, "こころ")).barcode,
            branch_id=ids["central"],
            staff_id=ids["staff"],
            today=today,
            policy=DEFAULT,
        )
    await db.rollback()
    received = await circulation.receive(
        db, barcode=barcode, branch_id=ids["central"], staff_id=ids["staff"], today=today, policy=DEFAULT
    )
    assert received.action == "to_hold_shelf" and received.shelf_until is not None


async def test_return_without_holds_goes_back_on_the_shelf(db: AsyncSession) -> None:
    ids = await _ids(db)
    item = await _item_of(db, "Pride and Prejudice", "on_loan")
    outcome = await circulation.checkin(
        db,
        barcode=item.barcode,
        branch_id=ids["east"],
        staff_id=ids["staff"],
        today=clock.today(),
        policy=DEFAULT,
    )
    assert outcome.action == "returned"
    with pytest.raises(CirculationRefused) as refused:
        await circulation.checkin(
            db,
            barcode=item.barcode,
            branch_id=ids["east"],
            staff_id=ids["staff"],
            today=clock.today(),
            policy=DEFAULT,
        )
    assert refused.value.reason == "not_on_loan"


async def test_expired_hold_is_cancelled_and_the_copy_passed_on(db: AsyncSession) -> None:
    ids = await _ids(db)
    today = clock.today()
    item = await _item_of(db, "銀河鉄道の夜", "on_loan")
    taro = await db.scalar(select(Patron.id).where(Patron.card_number == "100000025"))
    db.add(
        Hold(
            patron_id=taro,
            bib_id=item.bib_id,
            status="waiting",
            placed_at=dt.datetime(2030, 1, 1),
            pickup_branch_id=ids["central"],
            contact="phone",
        )
    )
    await db.commit()
    await circulation.checkin(
        db, barcode=item.barcode, branch_id=ids["central"], staff_id=ids["staff"], today=today, policy=DEFAULT
    )
    sato_hold = await db.scalar(select(Hold).where(Hold.item_id == item.id, Hold.status == "ready"))
    assert sato_hold is not None
    expired = await circulation.expire_uncollected(
        db, today=sato_hold.shelf_until + dt.timedelta(days=1), policy=DEFAULT
    )
    assert expired == 1
    await db.refresh(sato_hold)
    assert sato_hold.status == "cancelled" and sato_hold.cancel_reason == "expired"
    taro_hold = await db.scalar(select(Hold).where(Hold.patron_id == taro, Hold.bib_id == item.bib_id))
    assert taro_hold is not None and taro_hold.status == "ready" and taro_hold.item_id == item.id
    assert await db.scalar(select(Notice.id).where(Notice.dedup_key == f"hold_expired:hold:{sato_hold.id}"))
    # Running the same day again changes nothing.
    assert (
        await circulation.expire_uncollected(
            db, today=sato_hold.shelf_until + dt.timedelta(days=1), policy=DEFAULT
        )
        == 0
    )


async def test_two_counters_returning_one_item_at_once(database_url: str) -> None:
    engine = make_engine(database_url)
    maker = make_sessionmaker(engine)
    async with maker() as s:
        ids = await _ids(s)
        item = await _item_of(s, "銀河鉄道の夜", "on_loan")

    async def give_back(branch: str) -> str:
        async with maker() as s:
            try:
                return (
                    await circulation.checkin(
                        s,
                        barcode=item.barcode,
                        branch_id=ids[branch],
                        staff_id=ids["staff"],
                        today=clock.today(),
                        policy=DEFAULT,
                    )
                ).action
            except CirculationRefused as refused:
                return refused.reason

    results = await asyncio.gather(give_back("central"), give_back("central"))
    assert sorted(results) == ["not_on_loan", "to_hold_shelf"]
    async with maker() as s:
        assert len((await s.scalars(select(Hold).where(Hold.item_id == item.id))).all()) == 1
    await engine.dispose()


async def test_two_copies_returned_at_once_fill_one_hold_once(database_url: str) -> None:
    engine = make_engine(database_url)
    maker = make_sessionmaker(engine)
    async with maker() as s:
        ids = await _ids(s)
        bib_id = await s.scalar(select(Bib.id).where(Bib.title == "Pride and Prejudice"))
        copies = (await s.scalars(select(Item).where(Item.bib_id == bib_id).order_by(Item.id))).all()
        hanako = await s.scalar(select(Patron.id).where(Patron.card_number == "100000017"))
        taro = await s.scalar(select(Patron.id).where(Patron.card_number == "100000025"))
        for copy in copies:  # every copy on loan to Hanako
            if copy.status != "on_loan":
                copy.status = "on_loan"
                s.add(
                    Loan(
                        item_id=copy.id,
                        patron_id=hanako,
                        branch_id=copy.branch_id,
                        loaned_on=clock.today(),
                        due_on=clock.today() + dt.timedelta(days=14),
                    )
                )
        s.add(
            Hold(
                patron_id=taro,
                bib_id=bib_id,
                status="waiting",
                placed_at=dt.datetime(2026, 1, 1),
                pickup_branch_id=ids["central"],
                contact="phone",
            )
        )
        await s.commit()
        barcodes = [c.barcode for c in copies]

    async def give_back(code: str) -> str:
        async with maker() as s:
            return (
                await circulation.checkin(
                    s,
                    barcode=code,
                    branch_id=ids["central"],
                    staff_id=ids["staff"],
                    today=clock.today(),
                    policy=DEFAULT,
                )
            ).action

    results = await asyncio.gather(*(give_back(code) for code in barcodes))
    assert results.count("to_hold_shelf") == 1 and results.count("returned") == len(barcodes) - 1
    async with maker() as s:
        hold = await s.scalar(select(Hold).where(Hold.patron_id == taro, Hold.bib_id == bib_id))
        assert hold is not None and hold.status == "ready" and hold.item_id in [c.id for c in copies]
    await engine.dispose()


@pytest.mark.parametrize("preset", ["default", "koga", "kitakyushu", "yokohama", "fukushima", "fukuoka"])
def test_temporary_passwords_meet_the_policy(preset: str) -> None:
    policy = load_policy(preset)
    for _ in range(20):
        check_password_rules(policy, circulation.temporary_password(policy))


async def test_issue_temporary_password(db: AsyncSession) -> None:
    ids = await _ids(db)
    name, password = await circulation.issue_temporary_password(
        db, card="100000058", staff_id=ids["staff"], policy=DEFAULT
    )
    patron = await db.scalar(select(Patron).where(Patron.card_number == "100000058"))
    assert name == "山本 健" and patron is not None and patron.password_state == "temporary"
    from app.services.passwords import verify_password

    assert await verify_password(patron.password_hash, password)
    await db.execute(update(Patron).where(Patron.id == patron.id).values(password_state="none"))

"""Placing holds under every rule, atomically; the patron's changes; the allocation order."""

import asyncio
import datetime as dt

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app import clock
from app.db import make_engine, make_sessionmaker
from app.models import Bib, Branch, Email, Hold, Patron, PickupLocation
from app.policy import load_policy
from app.services import holds

# The demo library is built for the real today (its holds are placed days before it).
NOW = dt.datetime.combine(clock.today(), dt.time(10))
TODAY = NOW.date()
DEFAULT = load_policy("default")


async def _patron(db: AsyncSession, card: str) -> Patron:
    patron = await db.scalar(select(Patron).where(Patron.card_number == card))
    assert patron is not None
    return patron


async def _bib(db: AsyncSession, title: str) -> int:
    bib_id = await db.scalar(select(Bib.id).where(Bib.title == title))
    assert bib_id is not None
    return bib_id


async def _request(db: AsyncSession, patron_id: int, policy=DEFAULT, contact="phone", **kw):  # type: ignore[no-untyped-def]
    west = await db.scalar(select(Branch.id).where(Branch.code == "west"))
    return await holds.check_request(
        db,
        patron_id,
        policy,
        pickup=kw.get("pickup", west),
        location=kw.get("location", ""),
        contact=contact,
        email=kw.get("email"),
    )


async def _active(db: AsyncSession, patron_id: int) -> int:
    return (
        await db.scalar(
            select(func.count()).where(
                Hold.patron_id == patron_id, Hold.status.in_(("waiting", "in_transit", "ready"))
            )
        )
        or 0
    )


async def test_place_holds_and_positions(db: AsyncSession) -> None:
    taro = await _patron(db, "100000025")
    ginga = await _bib(db, "銀河鉄道の夜")
    results = await holds.place_holds(
        db, taro.id, [ginga], await _request(db, taro.id), now=NOW, today=TODAY, policy=DEFAULT
    )
    assert results[0].placed and results[0].position == 2  # Sato is first in the queue


async def test_each_rule_gives_its_reason(db: AsyncSession) -> None:
    hanako = await _patron(db, "100000017")
    ref = await db.scalar(select(Bib.id).where(Bib.control_number == "demo-reference"))
    vol2 = await _bib(db, "星の図書館 第2巻")  # Hanako already waits for it
    kokoro = await _bib(db, "こころ")
    results = await holds.place_holds(
        db,
        hanako.id,
        [ref, vol2, kokoro, 999999],
        await _request(db, hanako.id),
        now=NOW,
        today=TODAY,
        policy=DEFAULT,
    )
    assert [(r.placed, r.reason) for r in results] == [
        (False, "not_reservable"),
        (False, "duplicate"),
        (True, None),
        (False, "not_found"),
    ]


async def test_hold_limit_counts_every_channel(db: AsyncSession) -> None:
    hanako = await _patron(db, "100000017")
    ids = (
        await db.scalars(
            select(Bib.id)
            .where(Bib.loanable, Bib.control_number.like("demo-gen-%"))
            .order_by(Bib.id)
            .limit(12)
        )
    ).all()
    request = await _request(db, hanako.id)
    # One hold placed at the counter already counts (the demo's waiting hold is from the web).
    results = await holds.place_holds(db, hanako.id, ids, request, now=NOW, today=TODAY, policy=DEFAULT)
    assert [r.reason for r in results].count("limit") == 3 and sum(r.placed for r in results) == 9
    assert await _active(db, hanako.id) == 10


@pytest.mark.parametrize(
    ("card", "preset", "reason"),
    [
        ("100000025", "fukuoka", "overdue"),
        ("100000041", "default", "expired_card"),
        ("100000025", "fukushima", "no_email"),
    ],
)
async def test_patron_blocks(db: AsyncSession, card: str, preset: str, reason: str) -> None:
    patron = await _patron(db, card)
    policy = load_policy(preset)
    kokoro = await _bib(db, "こころ")
    request = holds.HoldRequest(
        (await db.scalar(select(Branch.id).where(Branch.code == "west"))), None, "phone", None
    )
    results = await holds.place_holds(
        db, patron.id, [kokoro], request, now=NOW, today=clock.today(), policy=policy
    )
    assert results[0].reason == reason and await _active(db, patron.id) == 0


async def test_overdue_does_not_block_where_policy_allows(db: AsyncSession) -> None:
    taro = await _patron(db, "100000025")
    results = await holds.place_holds(
        db,
        taro.id,
        [await _bib(db, "こころ")],
        await _request(db, taro.id),
        now=NOW,
        today=clock.today(),
        policy=DEFAULT,
    )
    assert results[0].placed


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"pickup": "999"}, "pickup"),
        ({"pickup": "abc"}, "pickup"),
        ({"pickup": ""}, "pickup"),
        ({"contact": "carrier-pigeon"}, "contact"),
        ({"contact": "email", "email": "999"}, "email"),
    ],
)
async def test_forged_form_values_are_refused(db: AsyncSession, fields: dict, reason: str) -> None:  # type: ignore[type-arg]
    hanako = await _patron(db, "100000017")
    west = await db.scalar(select(Branch.id).where(Branch.code == "west"))
    values = {"pickup": west, "location": "", "contact": "phone", "email": None, **fields}
    with pytest.raises(holds.HoldFormError) as problem:
        await holds.check_request(db, hanako.id, DEFAULT, **values)
    assert problem.value.reason == reason


async def test_pickup_location_must_belong_to_the_branch(db: AsyncSession) -> None:
    hanako = await _patron(db, "100000017")
    central = await db.scalar(select(Branch.id).where(Branch.code == "central"))
    west = await db.scalar(select(Branch.id).where(Branch.code == "west"))
    location = await db.scalar(select(PickupLocation.id).where(PickupLocation.branch_id == central))
    ok = await holds.check_request(
        db, hanako.id, DEFAULT, pickup=central, location=location, contact="phone", email=None
    )
    assert ok.pickup_location_id == location
    default = await holds.check_request(
        db, hanako.id, DEFAULT, pickup=central, location="", contact="phone", email=None
    )
    assert default.pickup_location_id == location  # no choice: the first counter
    for pickup, loc in ((west, location), (central, "999"), (central, "abc")):
        with pytest.raises(holds.HoldFormError):
            await holds.check_request(
                db, hanako.id, DEFAULT, pickup=pickup, location=loc, contact="phone", email=None
            )


async def test_email_contact_uses_only_a_confirmed_address_of_the_patron(db: AsyncSession) -> None:
    hanako = await _patron(db, "100000017")
    sato = await _patron(db, "100000066")
    sato_email = await db.scalar(select(Email.id).where(Email.patron_id == sato.id))
    with pytest.raises(holds.HoldFormError):
        await _request(db, hanako.id, contact="email", email=sato_email)
    request = await _request(db, hanako.id, contact="email")  # the one confirmed address is taken
    assert request.email_id is not None
    koga = load_policy("koga")
    with pytest.raises(holds.HoldFormError):
        await _request(db, hanako.id, policy=koga, contact="phone")  # Koga: email only


async def test_64_simultaneous_submissions_respect_limit_and_duplicates(database_url: str) -> None:
    engine = make_engine(database_url)
    maker = make_sessionmaker(engine)
    async with maker() as s:
        hanako = await _patron(s, "100000017")
        ids = (
            await s.scalars(
                select(Bib.id)
                .where(Bib.loanable, Bib.control_number.like("demo-gen-%"))
                .order_by(Bib.id)
                .limit(20)
            )
        ).all()
        request = await _request(s, hanako.id)

    async def submit(n: int) -> list[holds.PlaceResult]:
        async with maker() as s:
            chosen = [ids[(n + k) % len(ids)] for k in range(3)]
            return await holds.place_holds(
                s, hanako.id, chosen, request, now=NOW, today=TODAY, policy=DEFAULT
            )

    results = await asyncio.gather(*(submit(n) for n in range(64)))
    async with maker() as s:
        assert await _active(s, hanako.id) == DEFAULT.hold_limit
        per_bib = (
            await s.execute(
                select(Hold.bib_id, func.count())
                .where(Hold.patron_id == hanako.id, Hold.status == "waiting")
                .group_by(Hold.bib_id)
            )
        ).all()
        assert all(n == 1 for _, n in per_bib)
    assert sum(r.placed for batch in results for r in batch) == DEFAULT.hold_limit - 1
    await engine.dispose()


async def _waiting_hold(db: AsyncSession, card: str) -> Hold:
    patron = await _patron(db, card)
    hold = await db.scalar(select(Hold).where(Hold.patron_id == patron.id, Hold.status == "waiting"))
    assert hold is not None
    return hold


async def test_cancel_change_suspend_resume(db: AsyncSession) -> None:
    hold = await _waiting_hold(db, "100000017")
    patron_id, hold_id = hold.patron_id, hold.id
    west = await db.scalar(select(Branch.id).where(Branch.code == "west"))
    await holds.change_pickup(db, patron_id, hold_id, holds.HoldRequest(west, None, "phone", None))
    await holds.change_contact(db, patron_id, hold_id, holds.HoldRequest(west, None, "none", None))
    until = holds.parse_suspend_date("2026-12-24", TODAY)
    await holds.suspend(db, patron_id, hold_id, until)
    view = await holds.get_hold(db, patron_id, hold_id, today=TODAY, policy=DEFAULT)
    assert (view.pickup_branch_id, view.contact, view.suspended_until) == (west, "none", until)
    await holds.resume(db, patron_id, hold_id)
    await holds.cancel(db, patron_id, hold_id, now=NOW)
    view = await holds.get_hold(db, patron_id, hold_id, today=TODAY, policy=DEFAULT)
    assert view.status == "cancelled" and view.cancelled_at is not None


async def test_another_patrons_hold_is_not_found(db: AsyncSession) -> None:
    hold = await _waiting_hold(db, "100000066")
    taro = await _patron(db, "100000025")
    for action in (
        lambda: holds.cancel(db, taro.id, hold.id, now=NOW),
        lambda: holds.resume(db, taro.id, hold.id),
    ):
        with pytest.raises(holds.HoldNotFound):
            await action()
    assert (await db.get_one(Hold, hold.id, populate_existing=True)).status == "waiting"


async def test_a_ready_hold_cannot_be_changed_online(db: AsyncSession) -> None:
    hold = await _waiting_hold(db, "100000066")
    await db.execute(update(Hold).where(Hold.id == hold.id).values(status="ready"))
    await db.commit()
    with pytest.raises(holds.HoldFormError) as problem:
        await holds.cancel(db, hold.patron_id, hold.id, now=NOW)
    assert problem.value.reason == "not_waiting"


@pytest.mark.parametrize("value", ["2026-11-23", "2020-01-01", "2028-01-01", "tomorrow", "", "2026-02-30"])
def test_bad_suspend_dates(value: str) -> None:
    with pytest.raises(holds.HoldFormError):
        holds.parse_suspend_date(value, TODAY)


@pytest.mark.parametrize(
    "numbers",
    [
        {1: "1", 2: "1", 3: "2"},
        {1: "1", 2: "3", 3: "4"},
        {1: "1", 2: "2"},
        {1: "a", 2: "2", 3: "3"},
        {1: "0", 2: "1", 3: "2"},
    ],
)
def test_forged_orders_are_refused(numbers: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(holds.HoldFormError):
        holds.parse_order([1, 2, 3], numbers)


def test_order_sorts_by_the_patrons_numbers() -> None:
    assert holds.parse_order([10, 20, 30], {10: "2", 20: "3", 30: "1"}) == [30, 10, 20]


async def test_ordered_series_allocation_waits_for_the_earlier_volume(db: AsyncSession) -> None:
    taro = await _patron(db, "100000025")
    vols = [await _bib(db, f"星の図書館 第{n}巻") for n in (1, 2, 3)]
    request = await _request(db, taro.id)
    results = await holds.place_holds(
        db, taro.id, vols, request, now=NOW, today=TODAY, policy=DEFAULT, ordered=True
    )
    assert all(r.placed for r in results)
    group = {
        h.series_position: h for h in (await db.scalars(select(Hold).where(Hold.patron_id == taro.id))).all()
    }
    assert sorted(group) == [1, 2, 3] and len({h.series_group for h in group.values()}) == 1
    # Volume 2 comes back first: Hanako (not ordered) is ahead in the queue for it, then Taro must wait.
    nxt = await holds.next_hold_for_item(db, vols[1], today=TODAY)
    assert nxt is not None and nxt.patron_id != taro.id
    await db.execute(update(Hold).where(Hold.id == nxt.id).values(status="cancelled"))
    await db.commit()
    assert await holds.next_hold_for_item(db, vols[1], today=TODAY) is None  # volume 1 not allocated yet
    first = await holds.next_hold_for_item(db, vols[0], today=TODAY)
    assert first is not None and first.id == group[1].id
    await db.execute(update(Hold).where(Hold.id == first.id).values(status="ready"))
    await db.commit()
    second = await holds.next_hold_for_item(db, vols[1], today=TODAY)
    assert second is not None and second.id == group[2].id


async def test_suspended_holds_are_skipped_but_keep_their_place(db: AsyncSession) -> None:
    ginga = await _bib(db, "銀河鉄道の夜")
    taro = await _patron(db, "100000025")
    await holds.place_holds(
        db, taro.id, [ginga], await _request(db, taro.id), now=NOW, today=TODAY, policy=DEFAULT
    )
    sato_hold = await _waiting_hold(db, "100000066")
    await holds.suspend(db, sato_hold.patron_id, sato_hold.id, TODAY + dt.timedelta(days=10))
    nxt = await holds.next_hold_for_item(db, ginga, today=TODAY)
    assert nxt is not None and nxt.patron_id == taro.id
    later = await holds.next_hold_for_item(db, ginga, today=TODAY + dt.timedelta(days=10))
    assert later is not None and later.id == sato_hold.id


def test_changing_only_the_library_drops_the_old_librarys_counter() -> None:
    from dataclasses import fields

    values = {f.name: None for f in fields(holds.HoldView)}
    current = holds.HoldView(**{**values, "pickup_branch_id": 1, "pickup_location_id": 7})  # type: ignore[arg-type]
    assert holds.location_for_pickup(current, "2", "7") == ""  # the old counter, left as it was
    assert holds.location_for_pickup(current, "2", "9") == "9"  # a counter chosen for the new library
    assert holds.location_for_pickup(current, "1", "8") == "8"  # same library, another counter
    assert holds.location_for_pickup(current, "1", "7") == "7"

"""The counter's circulation engine: check out, return with allocation, receive, collect, expire.

Every function takes the write lock first (a no-op UPDATE of the item row: SQLite's write lock,
a row lock on PostgreSQL), so two counters returning the same item, or two copies of one title
returned at once, are handled one after the other. The database adds its own guard: an item is
on at most one in-transit or ready hold (unique index), and a hold moves on from "waiting" only
by a compare-and-set, so no hold ever gets two items.
"""

from __future__ import annotations

import datetime as dt
import secrets
import string
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.i18n import N_
from app.models import Bib, Branch, Hold, Item, Loan, Patron, StaffAudit
from app.policy import Policy
from app.services import calendar, history, holds, notices
from app.services.accounts import normalize_digits
from app.services.passwords import hash_password

REFUSALS = {
    "unknown_patron": N_("No patron has this card number."),
    "expired_card": N_("The card has expired: renew it before lending."),
    "overdue": N_("The patron has overdue items: this library does not lend until they are returned."),
    "unknown_item": N_("No item has this barcode."),
    "not_loanable": N_("This item is for use in the library only."),
    "on_loan": N_("This item is already on loan. Return it first."),
    "held_for_other": N_("This item is on the hold shelf for another patron."),
    "in_transit": N_("This item is in transit. Receive it first."),
    "not_on_loan": N_("This item is not on loan."),
    "not_in_transit": N_("This item is not in transit."),
    "not_ready": N_("This hold is not ready for collection."),
}


class CirculationRefused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Outcome:
    """What happened at the counter, for the result panel."""

    action: str  # checked_out / returned / to_hold_shelf / to_transit / received / collected
    barcode: str
    title: str
    patron_name: str | None = None
    due_on: dt.date | None = None
    hold_patron: str | None = None
    pickup_branch: str | None = None
    shelf_until: dt.date | None = None


async def audit(session: AsyncSession, staff_id: int, action: str, subject: str, detail: str = "") -> None:
    session.add(StaffAudit(staff_id=staff_id, action=action, subject=subject[:200], detail=detail[:500]))


async def _item(session: AsyncSession, barcode: str) -> tuple[Item, str]:
    code = normalize_digits(barcode)[:30]
    if not code:
        raise CirculationRefused("unknown_item")
    # Take the write lock on this item before reading anything else.
    await session.execute(
        update(Item)
        .where(Item.barcode == code)
        .values(status=Item.status)
        .execution_options(synchronize_session=False)
    )
    row = (
        await session.execute(
            select(Item, Bib.title).join(Bib, Bib.id == Item.bib_id).where(Item.barcode == code)
        )
    ).first()
    if row is None:
        raise CirculationRefused("unknown_item")
    return row[0], row[1]


async def due_date(session: AsyncSession, branch_id: int, start: dt.date) -> dt.date:
    """`start` or, when the branch is closed then, its next open day."""
    branch = await session.get_one(Branch, branch_id)
    closed = await calendar.closed_days(
        session, branch_id, start, start + dt.timedelta(days=calendar.LOOKAHEAD_DAYS)
    )
    return calendar.next_open_day(start, branch.closed_weekdays, closed)


async def shelf_deadline(session: AsyncSession, branch_id: int, notified_on: dt.date, days: int) -> dt.date:
    """`days` open days counted from the day after notification.

    Kitakyushu: 連絡日の翌日から休館日を除き1週間.
    """
    branch = await session.get_one(Branch, branch_id)
    closed = await calendar.closed_days(session, branch_id, notified_on, notified_on + dt.timedelta(days=120))
    day, counted = notified_on, 0
    while counted < days:
        day += dt.timedelta(days=1)
        if not calendar.is_closed(day, branch.closed_weekdays, closed):
            counted += 1
    return day


async def checkout(
    session: AsyncSession,
    *,
    card: str,
    barcode: str,
    branch_id: int,
    staff_id: int,
    today: dt.date,
    policy: Policy,
) -> Outcome:
    item, title = await _item(session, barcode)
    patron = await session.scalar(select(Patron).where(Patron.card_number == normalize_digits(card)[:20]))
    if patron is None:
        raise CirculationRefused("unknown_patron")
    if patron.card_expires_on < today:
        raise CirculationRefused("expired_card")
    if policy.overdue_blocks_holds and await session.scalar(
        select(func.count()).where(
            Loan.patron_id == patron.id, Loan.returned_on.is_(None), Loan.due_on < today
        )
    ):
        raise CirculationRefused("overdue")
    if not item.loanable:
        raise CirculationRefused("not_loanable")
    if item.status == "on_loan":
        raise CirculationRefused("on_loan")
    if item.status == "in_transit":
        raise CirculationRefused("in_transit")
    if item.status == "on_hold_shelf":
        hold = await session.scalar(select(Hold).where(Hold.item_id == item.id, Hold.status == "ready"))
        if hold is not None and hold.patron_id != patron.id:
            raise CirculationRefused("held_for_other")
        if hold is not None:
            hold.status, hold.collected_at = "collected", dt.datetime.combine(today, dt.time())
    due = await due_date(session, branch_id, today + dt.timedelta(days=policy.loan_days))
    session.add(Loan(item_id=item.id, patron_id=patron.id, branch_id=branch_id, loaned_on=today, due_on=due))
    item.status, item.location_branch_id = "on_loan", None
    if patron.keep_history:  # My本棚: only while the patron opts in
        await history.record_loan(session, patron.id, item.bib_id, today)
    await audit(session, staff_id, "checkout", item.barcode, f"card {patron.card_number}, due {due}")
    await session.commit()
    return Outcome("checked_out", item.barcode, title, patron.name, due_on=due)


async def _allocate(
    session: AsyncSession, item: Item, title: str, branch_id: int, *, today: dt.date, policy: Policy
) -> Outcome:
    """Give a copy that is free at `branch_id` to the next waiting hold, else put it back on the shelf."""
    while True:
        hold = await holds.next_hold_for_item(session, item.bib_id, today=today)
        if hold is None:
            item.status, item.location_branch_id = "on_shelf", branch_id
            return Outcome("returned", item.barcode, title)
        here = hold.pickup_branch_id == branch_id
        status = "ready" if here else "in_transit"
        values: dict[str, object] = {"status": status, "item_id": item.id}
        if here:
            values.update(await _ready_values(session, hold.pickup_branch_id, today, policy))
        moved = await session.execute(
            update(Hold)
            .where(Hold.id == hold.id, Hold.status == "waiting")
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if moved.rowcount != 1:  # type: ignore[attr-defined]
            continue  # someone else moved this hold on: ask for the next one
        patron = await session.get_one(Patron, hold.patron_id)
        branch = await session.get_one(Branch, hold.pickup_branch_id)
        item.status = "on_hold_shelf" if here else "in_transit"
        item.location_branch_id = branch_id
        shelf_until = values.get("shelf_until")
        if here and isinstance(shelf_until, dt.date):
            notified = values.get("notified_on")
            await _pickup_notice(
                session,
                hold,
                title,
                branch,
                shelf_until,
                notified if isinstance(notified, dt.date) else today,
                policy,
            )
        return Outcome(
            "to_hold_shelf" if here else "to_transit",
            item.barcode,
            title,
            hold_patron=patron.name,
            pickup_branch=branch.name_ja,
            shelf_until=shelf_until if isinstance(shelf_until, dt.date) else None,
        )


async def _ready_values(
    session: AsyncSession, branch_id: int, today: dt.date, policy: Policy
) -> dict[str, object]:
    # Kitakyushu: the pickup mail goes the day after the item became ready.
    notify = today + dt.timedelta(days=1)
    return {
        "ready_on": today,
        "notified_on": notify,
        "shelf_until": await shelf_deadline(session, branch_id, notify, policy.shelf_days),
    }


async def _pickup_notice(
    session: AsyncSession,
    hold: Hold,
    title: str,
    branch: Branch,
    shelf_until: dt.date,
    notified_on: dt.date,
    policy: Policy,
) -> None:
    if hold.contact != "email":
        return  # phone: it is on the staff's calls-to-make list; none: no contact
    if "pickup_ready" in policy.optional_notices and not await session.scalar(
        select(Patron.notify_pickup).where(Patron.id == hold.patron_id)
    ):
        return  # the patron switched this mail off (where the library lets them)
    # Kitakyushu: 用意できた日の翌日に、メールでお知らせします — due on the notification morning.
    await notices.queue(
        session,
        type="pickup_ready",
        patron_id=hold.patron_id,
        hold_id=hold.id,
        now=dt.datetime.combine(notified_on, dt.time(8)),
        dedup_key=f"pickup_ready:hold:{hold.id}",
        payload={
            "title": title,
            "branch_ja": branch.name_ja,
            "branch_en": branch.name_en,
            "shelf_until": shelf_until.isoformat(),
        },
    )


async def checkin(
    session: AsyncSession, *, barcode: str, branch_id: int, staff_id: int, today: dt.date, policy: Policy
) -> Outcome:
    """Return: close the loan, then allocation decides where the copy goes."""
    item, title = await _item(session, barcode)
    loan = await session.scalar(select(Loan).where(Loan.item_id == item.id, Loan.returned_on.is_(None)))
    if loan is None:
        raise CirculationRefused("not_on_loan")
    loan.returned_on = today
    await session.flush()
    outcome = await _allocate(session, item, title, branch_id, today=today, policy=policy)
    await audit(session, staff_id, "return", item.barcode, outcome.action)
    await session.commit()
    return outcome


async def receive(
    session: AsyncSession, *, barcode: str, branch_id: int, staff_id: int, today: dt.date, policy: Policy
) -> Outcome:
    """A copy in transit arrives: ready for its hold when this is the pickup library."""
    item, title = await _item(session, barcode)
    if item.status != "in_transit":
        raise CirculationRefused("not_in_transit")
    hold = await session.scalar(select(Hold).where(Hold.item_id == item.id, Hold.status == "in_transit"))
    if hold is None or hold.pickup_branch_id != branch_id:
        outcome = await _allocate(session, item, title, branch_id, today=today, policy=policy)
    else:
        values = await _ready_values(session, branch_id, today, policy)
        hold.status, hold.ready_on = "ready", today
        hold.notified_on, hold.shelf_until = values["notified_on"], values["shelf_until"]  # type: ignore[assignment]
        item.status, item.location_branch_id = "on_hold_shelf", branch_id
        branch = await session.get_one(Branch, branch_id)
        patron = await session.get_one(Patron, hold.patron_id)
        await _pickup_notice(session, hold, title, branch, hold.shelf_until, hold.notified_on, policy)  # type: ignore[arg-type]
        outcome = Outcome(
            "to_hold_shelf",
            item.barcode,
            title,
            hold_patron=patron.name,
            pickup_branch=branch.name_ja,
            shelf_until=hold.shelf_until,
        )
    await audit(session, staff_id, "receive", item.barcode, outcome.action)
    await session.commit()
    return outcome


async def collect(
    session: AsyncSession, *, hold_id: int, branch_id: int, staff_id: int, today: dt.date, policy: Policy
) -> Outcome:
    """The patron collects a ready hold: it becomes a loan and the hold is fulfilled."""
    hold = await session.get(Hold, hold_id)
    if hold is None or hold.status != "ready" or hold.item_id is None:
        raise CirculationRefused("not_ready")
    item = await session.get_one(Item, hold.item_id)
    patron = await session.get_one(Patron, hold.patron_id)
    return await checkout(
        session,
        card=patron.card_number,
        barcode=item.barcode,
        branch_id=branch_id,
        staff_id=staff_id,
        today=today,
        policy=policy,
    )


async def expire_uncollected(session: AsyncSession, *, today: dt.date, policy: Policy) -> int:
    """Cancel ready holds past their shelf deadline ("not collected") and pass their copies on."""
    expired = (
        await session.scalars(
            select(Hold).where(Hold.status == "ready", Hold.shelf_until < today).order_by(Hold.id)
        )
    ).all()
    for done, hold in enumerate(expired, 1):
        moved = await session.execute(
            update(Hold)
            .where(Hold.id == hold.id, Hold.status == "ready")
            .values(
                status="cancelled",
                cancel_reason="expired",
                cancelled_at=dt.datetime.combine(today, dt.time()),
            )
            .execution_options(synchronize_session=False)
        )
        if moved.rowcount != 1:  # type: ignore[attr-defined]
            continue
        title = await session.scalar(select(Bib.title).where(Bib.id == hold.bib_id)) or ""
        await notices.queue(
            session,
            type="hold_expired",
            patron_id=hold.patron_id,
            hold_id=hold.id,
            dedup_key=f"hold_expired:hold:{hold.id}",
            payload={"title": title},
        )
        if hold.item_id is not None:
            item = await session.get_one(Item, hold.item_id)
            await _allocate(session, item, title, hold.pickup_branch_id, today=today, policy=policy)
        if done % 100 == 0:
            await (
                session.commit()
            )  # in batches: a commit per hold made the daily job slow (bench/circulation.py)
    await session.commit()
    return len(expired)


def temporary_password(policy: Policy) -> str:
    """A random password that meets the policy (shown once, printed for the patron)."""
    length = max(policy.password_min_length, min(8, policy.password_max_length))
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"  # no look-alikes (l/1, o/0) on a printed slip
    while True:
        candidate = "".join(secrets.choice(alphabet) for _ in range(length))
        if "symbol" in policy.password_required_classes:
            candidate = candidate[:-1] + secrets.choice(policy.password_symbols)
        if any(c in string.digits for c in candidate) and any(c in string.ascii_letters for c in candidate):
            return candidate


async def issue_temporary_password(
    session: AsyncSession, *, card: str, staff_id: int, policy: Policy
) -> tuple[str, str]:
    """Set a temporary password; returns (patron name, the password to hand over)."""
    patron = await session.scalar(select(Patron).where(Patron.card_number == normalize_digits(card)[:20]))
    if patron is None:
        raise CirculationRefused("unknown_patron")
    password = temporary_password(policy)
    patron.password_hash = await hash_password(password)
    patron.password_state = "temporary"
    await audit(session, staff_id, "temporary_password", patron.card_number)
    await session.commit()
    return patron.name, password

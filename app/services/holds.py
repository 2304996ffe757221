"""Holds (予約): placing them (one by one or as an ordered series), the patron's changes, and the
one function allocation asks which waiting hold gets a returned item next.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from sqlalchemy import Select, and_, bindparam, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import BindParameter

from app.i18n import N_
from app.models import ACTIVE_HOLD_STATUSES, Bib, Branch, Email, Hold, Item, Loan, Patron, PickupLocation
from app.policy import Policy
from app.reads import Bound, Read
from app.services import notices

STATUS_LABELS = {
    "waiting": N_("Waiting"),
    "in_transit": N_("In transit / being prepared"),
    "ready": N_("Ready for pickup"),
    "collected": N_("Collected"),
    "cancelled": N_("Cancelled"),
}
CONTACT_LABELS = {"email": N_("Email"), "phone": N_("Phone"), "none": N_("No contact")}

REFUSAL_MESSAGES = {
    "expired_card": N_("Your library card has expired. Please renew it at the counter."),
    "overdue": N_("You have overdue items. Please return them before reserving."),
    "no_email": N_("Please register and confirm an email address before reserving."),
    "limit": N_("You already have the most holds allowed (%(limit)s)."),
    "duplicate": N_("You have already reserved this title."),
    "not_reservable": N_("This title cannot be reserved"),
    "not_found": N_("This title is no longer in the catalogue."),
}
FORM_MESSAGES = {
    "nothing": N_("Please tick at least one title."),
    "pickup": N_("Please choose a pickup library from the list."),
    "location": N_("Please choose a pickup location at that library."),
    "contact": N_("Please choose a contact method from the list."),
    "email": N_("Please choose one of your confirmed email addresses."),
    "order": N_("Please number the volumes 1, 2, 3… without gaps or repeats."),
    "date": N_("Please give a date after today and within one year (YYYY-MM-DD)."),
    "not_waiting": N_(
        "This hold is already being prepared or is ready, so it cannot be changed here. "
        "Please call or visit the library."
    ),
}
MAX_SUSPEND_DAYS = 365


class HoldFormError(ValueError):
    """The holds form holds a value we cannot accept; `reason` keys FORM_MESSAGES."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class HoldNotFound(LookupError):
    """No hold with that id belongs to this patron."""


@dataclass(frozen=True)
class PickupChoice:
    branch_id: int
    name_ja: str
    name_en: str
    locations: tuple[tuple[int, str, str], ...]


@dataclass(frozen=True)
class ContactChoices:
    methods: tuple[str, ...]
    emails: tuple[tuple[int, str, bool], ...]  # id, address, default


@dataclass(frozen=True)
class HoldRequest:
    """What the patron chose on the holds form, checked against the database."""

    pickup_branch_id: int
    pickup_location_id: int | None
    contact: str
    email_id: int | None


@dataclass(frozen=True)
class PlaceResult:
    bib_id: int
    title: str
    placed: bool
    reason: str | None = None
    hold_id: int | None = None
    position: int | None = None


@dataclass(slots=True)  # a row of a page: not frozen, which costs ~3 µs per row to build
class HoldView:
    id: int
    bib_id: int
    title: str
    status: str
    placed_at: dt.datetime
    pickup_branch_id: int
    pickup_location_id: int | None
    pickup_ja: str
    pickup_en: str
    contact: str
    email_id: int | None
    queue_position: int | None
    estimated_days: int | None
    shelf_until: dt.date | None
    suspended_until: dt.date | None
    cancelled_at: dt.datetime | None
    series_group: str | None
    series_position: int | None

    @property
    def changeable(self) -> bool:
        return self.status == "waiting"


@dataclass
class Blocks:
    """Why this patron may not place holds at all (empty when they may)."""

    reasons: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- the form's choices


_PICKUPS = Read(
    lambda: (
        select(
            Branch.id.label("branch_id"),
            Branch.name_ja.label("branch_ja"),
            Branch.name_en.label("branch_en"),
            PickupLocation.id.label("location_id"),
            PickupLocation.name_ja.label("location_ja"),
            PickupLocation.name_en.label("location_en"),
        )
        .outerjoin(PickupLocation, PickupLocation.branch_id == Branch.id)
        .where(Branch.is_pickup_point)
        .order_by(Branch.id, PickupLocation.id)
    )
)


async def pickup_choices(session: AsyncSession) -> list[PickupChoice]:
    choices: dict[int, PickupChoice] = {}
    for bid, ja, en, lid, lja, len_ in await _PICKUPS.all(session):
        current = choices.get(bid) or PickupChoice(bid, ja, en, ())
        if lid is not None:
            current = PickupChoice(bid, ja, en, (*current.locations, (lid, lja, len_)))
        choices[bid] = current
    return list(choices.values())


_CONFIRMED_EMAILS = Read(
    lambda: (
        select(Email.id, Email.address, Email.is_default)
        .where(Email.patron_id == bindparam("patron_id"), Email.confirmed_at.is_not(None))
        .order_by(Email.is_default.desc(), Email.id)
    )
)


async def contact_choices(session: AsyncSession, patron_id: int, policy: Policy) -> ContactChoices:
    emails = await _CONFIRMED_EMAILS.all(session, patron_id=patron_id)
    return ContactChoices(
        policy.contact_methods, tuple((e.id, e.address, bool(e.is_default)) for e in emails)
    )


def _int_or_none(value: object) -> int | None:
    text = str(value or "").strip()
    return int(text) if text.isdigit() and len(text) < 10 else None


async def check_request(
    session: AsyncSession,
    patron_id: int,
    policy: Policy,
    *,
    pickup: object,
    location: object,
    contact: object,
    email: object,
) -> HoldRequest:
    """Validate the chosen pickup library, location, contact and address (forged ids included)."""
    choices = {c.branch_id: c for c in await pickup_choices(session)}
    branch_id = _int_or_none(pickup)
    if branch_id not in choices:
        raise HoldFormError("pickup")
    branch = choices[branch_id]
    location_id = _int_or_none(location)
    if branch.locations:
        if not str(location or "").strip():
            location_id = branch.locations[0][0]  # no choice made: the library's first (main) counter
        if location_id not in {loc[0] for loc in branch.locations}:
            raise HoldFormError("location")
    elif str(location or "").strip():
        raise HoldFormError("location")
    method = str(contact or "")
    contacts = await contact_choices(session, patron_id, policy)
    if method not in contacts.methods:
        raise HoldFormError("contact")
    email_id = None
    if method == "email":
        email_id = _int_or_none(email)
        if email_id is None and len(contacts.emails) == 1:
            email_id = contacts.emails[0][0]
        if email_id not in {e[0] for e in contacts.emails}:
            raise HoldFormError("email")
    return HoldRequest(branch_id, location_id if branch.locations else None, method, email_id)


# ---------------------------------------------------------------- placing holds


async def patron_blocks(session: AsyncSession, patron_id: int, *, today: dt.date, policy: Policy) -> Blocks:
    """Rules that stop every hold: expired card, overdue loans (policy), no confirmed email (policy)."""
    row = (
        await session.execute(
            select(
                Patron.card_expires_on,
                select(func.count())
                .where(Loan.patron_id == patron_id, Loan.returned_on.is_(None), Loan.due_on < today)
                .scalar_subquery(),
                select(func.count())
                .where(Email.patron_id == patron_id, Email.confirmed_at.is_not(None))
                .scalar_subquery(),
            ).where(Patron.id == patron_id)
        )
    ).one()
    expires, overdue, emails = row
    blocks = Blocks()
    if policy.expired_card_blocks_holds and expires < today:
        blocks.reasons.append("expired_card")  # Fukushima: 有効期限切れの場合、資料の予約はできません
    if policy.overdue_blocks_holds and overdue:
        blocks.reasons.append("overdue")  # Fukuoka: no reservations while anything is overdue
    if policy.email_required_for_holds and not emails:
        blocks.reasons.append("no_email")  # Fukushima: 予約するには、メールアドレスの登録が必要です
    return blocks


async def place_holds(
    session: AsyncSession,
    patron_id: int,
    bib_ids: Sequence[int],
    request: HoldRequest,
    *,
    now: dt.datetime,
    today: dt.date,
    policy: Policy,
    ordered: bool = False,
) -> list[PlaceResult]:
    """Place a hold on each bib, in order; each result says placed or why not.

    Atomic per patron: the patron's row is locked first (a no-op UPDATE takes SQLite's write lock
    and a row lock on PostgreSQL), so concurrent submissions are counted one after another and
    never exceed the hold limit; the unique index on active holds stops a duplicate regardless.
    The no-op sets a column nothing refers to: `SET id = id` made SQLite check every row that
    refers to the patron (each loan, hold and mail ever: 3 752 -> 35 072 VM steps from one to ten
    years of a heavy reader's history, `python -m bench history`).
    With `ordered`, the placed holds form one series group in the given order (順番予約).
    """
    bib_ids = list(dict.fromkeys(int(b) for b in bib_ids))[:50]
    await session.execute(update(Patron).where(Patron.id == patron_id).values(created_at=Patron.created_at))
    blocks = await patron_blocks(session, patron_id, today=today, policy=policy)
    bibs = {
        b.id: b
        for b in (
            await session.execute(
                select(
                    Bib.id,
                    Bib.title,
                    Bib.loanable,
                    select(func.count())
                    .where(Item.bib_id == Bib.id, Item.loanable)
                    .scalar_subquery()
                    .label("copies"),
                ).where(Bib.id.in_(bib_ids))
            )
        ).all()
    }
    active = set(
        (
            await session.scalars(
                select(Hold.bib_id).where(Hold.patron_id == patron_id, Hold.status.in_(ACTIVE_HOLD_STATUSES))
            )
        ).all()
    )
    count = (
        await session.scalar(
            select(func.count()).where(Hold.patron_id == patron_id, Hold.status.in_(ACTIVE_HOLD_STATUSES))
        )
        or 0
    )
    group = str(uuid.uuid4()) if ordered else None
    results: list[PlaceResult] = []
    placed: list[Hold] = []
    stamp = now.replace(tzinfo=None)
    for bib_id in bib_ids:
        bib = bibs.get(bib_id)
        title = bib.title if bib else ""
        reason = blocks.reasons[0] if blocks.reasons else None
        if reason is None:
            if bib is None:
                reason = "not_found"
            elif not bib.loanable or not bib.copies:
                reason = "not_reservable"
            elif bib_id in active:
                reason = "duplicate"
            elif count >= policy.hold_limit:
                reason = "limit"
        if reason:
            results.append(PlaceResult(bib_id, title, False, reason))
            continue
        hold = Hold(
            patron_id=patron_id,
            bib_id=bib_id,
            status="waiting",
            placed_at=stamp + dt.timedelta(microseconds=len(placed)),
            pickup_branch_id=request.pickup_branch_id,
            pickup_location_id=request.pickup_location_id,
            contact=request.contact,
            email_id=request.email_id,
            channel="web",
            series_group=group,
            series_position=len(placed) + 1 if group else None,
        )
        session.add(hold)
        placed.append(hold)
        active.add(bib_id)
        count += 1
        results.append(PlaceResult(bib_id, title, True))
    try:
        await session.flush()
    except IntegrityError:
        # Another submission placed the same hold between our check and our insert.
        await session.rollback()
        return [PlaceResult(r.bib_id, r.title, False, r.reason or "duplicate") for r in results]
    await notices.hold_accepted(session, [h.id for h in placed])
    await session.commit()
    ids = {h.bib_id: h.id for h in placed}
    positions = await _positions(session, list(ids.values()))
    return [
        PlaceResult(
            r.bib_id, r.title, r.placed, r.reason, ids.get(r.bib_id), positions.get(ids.get(r.bib_id, 0))
        )
        for r in results
    ]


async def _positions(session: AsyncSession, hold_ids: list[int]) -> dict[int, int]:
    if not hold_ids:
        return {}
    ahead = aliased(Hold)
    rows = await session.execute(
        select(
            Hold.id,
            select(func.count(ahead.id) + 1)
            .where(ahead.bib_id == Hold.bib_id, ahead.status == "waiting", ahead.placed_at < Hold.placed_at)
            .correlate(Hold)
            .scalar_subquery(),
        ).where(Hold.id.in_(hold_ids))
    )
    return dict(rows.all())  # type: ignore[arg-type]


# ---------------------------------------------------------------- the Holds page


def _listed(*columns: Any) -> Select:
    """`columns` of the patron's holds as the lists show them (active ones, and those cancelled
    since `since`), with the title and pickup library joined, active first, oldest first."""
    patron: BindParameter[int] = bindparam("patron_id")
    since: BindParameter[dt.datetime] = bindparam("since")
    return (
        select(*columns)
        .join(Bib, Bib.id == Hold.bib_id)
        .join(Branch, Branch.id == Hold.pickup_branch_id)
        .where(
            # The patron in each arm, so that each is one look into ix_holds_patron_status (active
            # statuses; cancelled since `since`) rather than a walk of every hold the patron ever
            # placed: after five years of a heavy reader, 58 -> 15 µs (bench/pages.py's history).
            or_(
                and_(Hold.patron_id == patron, Hold.status.in_(ACTIVE_HOLD_STATUSES)),
                and_(Hold.patron_id == patron, Hold.status == "cancelled", Hold.cancelled_at >= since),
            ),
        )
        .order_by(Hold.status == "cancelled", Hold.placed_at)
    )


@cache
def _list_query() -> Select:
    """Built once (statement construction costs more than running it); patron and date are bound."""
    ahead = aliased(Hold)
    position = (
        select(func.count(ahead.id) + 1)
        .where(ahead.bib_id == Hold.bib_id, ahead.status == "waiting", ahead.placed_at < Hold.placed_at)
        .correlate(Hold)
        .scalar_subquery()
    )
    copies = (
        select(func.count(Item.id))
        .where(Item.bib_id == Hold.bib_id, Item.loanable)
        .correlate(Hold)
        .scalar_subquery()
    )
    return _listed(
        Hold.id,
        Hold.bib_id,
        Bib.title,
        Hold.status,
        Hold.placed_at,
        Hold.pickup_branch_id,
        Hold.pickup_location_id,
        Branch.name_ja,
        Branch.name_en,
        Hold.contact,
        Hold.email_id,
        Hold.shelf_until,
        Hold.suspended_until,
        Hold.cancelled_at,
        Hold.series_group,
        Hold.series_position,
        position.label("position"),
        copies.label("copies"),
    )


@cache
def _lines_query() -> Select:
    return _listed(
        Bib.title, Hold.status, Branch.name_ja, Branch.name_en, Hold.shelf_until, Hold.cancelled_at
    )


_LIST = Read(_list_query)
_LINES = Read(_lines_query)


@dataclass(slots=True)  # a row of a page: not frozen, which costs a setattr call per field
class HoldLine:
    """A hold as the dashboard lists it."""

    title: str
    status: str
    pickup_ja: str
    pickup_en: str
    shelf_until: dt.date | None
    cancelled_at: dt.datetime | None


def _cancelled_since(today: dt.date, policy: Policy) -> dt.datetime:
    """Cancelled holds stay in the lists for the policy's days."""
    return dt.datetime.combine(today - dt.timedelta(days=policy.cancelled_visible_days), dt.time())


def lines_read(patron_id: int, *, today: dt.date, policy: Policy) -> Bound:
    """The holds `list_holds` gives, in its order, with only what the dashboard shows (no queue
    position, no count of copies: the two subqueries a hold that the holds page needs): a list of
    HoldLine, alone or with other reads (app/reads.py)."""
    return Bound(_LINES, {"patron_id": patron_id, "since": _cancelled_since(today, policy)}, _hold_lines)


def _hold_lines(rows: list[Any]) -> list[HoldLine]:
    return [HoldLine(r.title, r.status, r.name_ja, r.name_en, r.shelf_until, r.cancelled_at) for r in rows]


async def lines(session: AsyncSession, patron_id: int, *, today: dt.date, policy: Policy) -> list[HoldLine]:
    return await lines_read(patron_id, today=today, policy=policy).run(session)  # type: ignore[no-any-return]


async def list_holds(
    session: AsyncSession, patron_id: int, *, today: dt.date, policy: Policy
) -> list[HoldView]:
    """Active holds and those cancelled within the policy's days, with queue position and wait estimate."""
    rows = await _LIST.all(session, patron_id=patron_id, since=_cancelled_since(today, policy))
    views = []
    for r in rows:
        waiting = r.status == "waiting"
        # Estimated wait: position × loan period ÷ loanable copies (shown as an estimate).
        estimate = -(-r.position * policy.loan_days // max(1, r.copies)) if waiting and r.copies else None
        views.append(
            HoldView(
                id=r.id,
                bib_id=r.bib_id,
                title=r.title,
                status=r.status,
                placed_at=r.placed_at,
                pickup_branch_id=r.pickup_branch_id,
                pickup_location_id=r.pickup_location_id,
                pickup_ja=r.name_ja,
                pickup_en=r.name_en,
                contact=r.contact,
                email_id=r.email_id,
                queue_position=r.position if waiting else None,
                estimated_days=estimate,
                shelf_until=r.shelf_until,
                suspended_until=r.suspended_until,
                cancelled_at=r.cancelled_at,
                series_group=r.series_group,
                series_position=r.series_position,
            )
        )
    return views


async def get_hold(
    session: AsyncSession, patron_id: int, hold_id: int, *, today: dt.date, policy: Policy
) -> HoldView:
    for view in await list_holds(session, patron_id, today=today, policy=policy):
        if view.id == hold_id:
            return view
    raise HoldNotFound(hold_id)


async def _change_waiting(session: AsyncSession, patron_id: int, hold_id: int, **values: object) -> None:
    """Apply `values` to a waiting hold of this patron: 404 for another's, refused once it moved on."""
    status = await session.scalar(select(Hold.status).where(Hold.id == hold_id, Hold.patron_id == patron_id))
    if status is None:
        raise HoldNotFound(hold_id)
    result = await session.execute(
        update(Hold)
        .where(Hold.id == hold_id, Hold.patron_id == patron_id, Hold.status == "waiting")
        .values(**values)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        await session.rollback()
        raise HoldFormError("not_waiting")  # Kitakyushu: 取寄・準備中/ご用意できました は取消・変更できません
    await session.commit()


async def cancel(session: AsyncSession, patron_id: int, hold_id: int, *, now: dt.datetime) -> None:
    await _change_waiting(
        session,
        patron_id,
        hold_id,
        status="cancelled",
        cancelled_at=now.replace(tzinfo=None),
        cancel_reason="patron",
    )


def location_for_pickup(current: HoldView, pickup: object, location: object) -> object:
    """The counter asked for when a hold's pickup changes: if only the library was changed, the
    counter still selected is the old library's, so the new library's main counter is meant."""
    if str(pickup) != str(current.pickup_branch_id) and str(location or "") == str(
        current.pickup_location_id or ""
    ):
        return ""
    return location


async def change_pickup(session: AsyncSession, patron_id: int, hold_id: int, request: HoldRequest) -> None:
    await _change_waiting(
        session,
        patron_id,
        hold_id,
        pickup_branch_id=request.pickup_branch_id,
        pickup_location_id=request.pickup_location_id,
    )


async def change_contact(session: AsyncSession, patron_id: int, hold_id: int, request: HoldRequest) -> None:
    await _change_waiting(session, patron_id, hold_id, contact=request.contact, email_id=request.email_id)


def parse_suspend_date(value: object, today: dt.date) -> dt.date:
    text_value = unicodedata.normalize("NFKC", str(value or "")).strip()[:20]
    try:
        day = dt.date.fromisoformat(text_value)
    except ValueError as exc:
        raise HoldFormError("date") from exc
    if not today < day <= today + dt.timedelta(days=MAX_SUSPEND_DAYS):
        raise HoldFormError("date")
    return day


async def suspend(session: AsyncSession, patron_id: int, hold_id: int, until: dt.date) -> None:
    """予約繰下: keep the place in the queue, but be skipped by allocation until `until`."""
    await _change_waiting(session, patron_id, hold_id, suspended_until=until)


async def resume(session: AsyncSession, patron_id: int, hold_id: int) -> None:
    await _change_waiting(session, patron_id, hold_id, suspended_until=None)


# ---------------------------------------------------------------- ordered series holds


def parse_order(bib_ids: Sequence[int], positions: dict[int, object]) -> list[int]:
    """The bibs sorted by the patron's numbers, which must be exactly 1..n (no gaps, no repeats)."""
    numbers: dict[int, int] = {}
    for bib_id in bib_ids:
        value = _int_or_none(positions.get(bib_id))
        if value is None:
            raise HoldFormError("order")
        numbers[bib_id] = value
    if sorted(numbers.values()) != list(range(1, len(bib_ids) + 1)):
        raise HoldFormError("order")
    return sorted(bib_ids, key=lambda b: numbers[b])


# ---------------------------------------------------------------- allocation


@cache
def _next_hold_query() -> Select:
    """Built once (it costs ~1 ms to build, more than to run); bib and day are bound."""
    earlier = aliased(Hold)
    earlier_unallocated = (
        select(earlier.id)
        .where(
            earlier.series_group == Hold.series_group,
            earlier.series_position < Hold.series_position,
            earlier.status == "waiting",
        )
        .correlate(Hold)
        .exists()
    )
    return (
        select(Hold)
        .where(
            Hold.bib_id == bindparam("bib_id"),
            Hold.status == "waiting",
            or_(Hold.suspended_until.is_(None), Hold.suspended_until <= bindparam("today")),
            or_(Hold.series_group.is_(None), ~earlier_unallocated),
        )
        .order_by(Hold.placed_at, Hold.id)
        .limit(1)
    )


async def next_hold_for_item(session: AsyncSession, bib_id: int, *, today: dt.date) -> Hold | None:
    """The waiting hold that gets a returned copy of `bib_id` next, or None.

    Queue order (placed_at); suspended holds are skipped (予約繰下); in an ordered series group
    (順番予約) volume k+1 is never allocated before volume k has been allocated.
    """
    return await session.scalar(_next_hold_query(), {"bib_id": bib_id, "today": today})

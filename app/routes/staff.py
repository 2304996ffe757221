"""The counter (staff side): log-in, check out, return, receive, collect, temporary passwords, calendar."""

from __future__ import annotations

import datetime as dt
import unicodedata
from dataclasses import dataclass
from typing import Any

from litestar import Request, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException, PermissionDeniedException, ServiceUnavailableException
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app import clock
from app.i18n import N_, gettext
from app.models import Bib, Branch, ClosedDay, Hold, Item, Loan, Notice, Patron
from app.policy import Policy
from app.routes._deps import RecordId
from app.routes._render import redirect, render, wants_fragment
from app.services import accounts, circulation
from app.services.ratelimit import LOGIN_PER_CARD_AND_CLIENT, LOGIN_PER_CLIENT
from app.sessions import ROTATE_KEY, UNAVAILABLE_KEY

RESULT_TITLES = {
    "checked_out": N_("Checked out"),
    "returned": N_("Returned: back on the shelf"),
    "to_hold_shelf": N_("Returned: put it on the hold shelf"),
    "to_transit": N_("Returned: send it to the pickup library"),
    "received": N_("Received"),
    "collected": N_("Collected"),
}


class StaffLoginRequired(Exception):
    """A staff page was asked for without a staff session."""


@dataclass(frozen=True)
class StaffSession:
    id: int
    name: str
    role: str
    branch_id: int


def provide_staff(request: Request) -> StaffSession:
    data = request.session.get("staff") if "session" in request.scope else None
    if not data:
        if request.session.get("pid"):
            raise PermissionDeniedException("Staff only")  # a patron's session is not a staff log-in
        if request.scope.get(UNAVAILABLE_KEY):
            raise ServiceUnavailableException()  # the session store is away: not logged out
        raise StaffLoginRequired()
    return StaffSession(int(data["id"]), str(data["name"]), str(data["role"]), int(data["branch"]))


def _text(value: object, limit: int = 40) -> str:
    return unicodedata.normalize("NFKC", str(value or "")).strip()[:limit]


@get("/staff/login", name="staff:login")
async def login_page(request: Request) -> object:
    return render(request, "staff/login.html", error=None, username="")


@post("/staff/login", name="staff:login_post")
async def login(request: Request, db: NamedDependency[AsyncSession], state: State) -> object:
    form = await request.form()
    username, password = _text(form.get("username"), 50), str(form.get("password", ""))
    client = request.client.host if request.client else "unknown"
    limiter = state.limiter
    if await limiter.exceeded(
        LOGIN_PER_CARD_AND_CLIENT, f"staff:{username}|{client}"
    ) or await limiter.exceeded(LOGIN_PER_CLIENT, f"staff:{client}"):
        return render(
            request,
            "staff/login.html",
            status_code=429,
            username=username,
            error=gettext("Too many attempts. Please wait 15 minutes and try again, or ask at the counter."),
        )
    user = await accounts.authenticate_staff(db, username, password)
    if user is None:
        await limiter.hit(LOGIN_PER_CARD_AND_CLIENT, f"staff:{username}|{client}")
        await limiter.hit(LOGIN_PER_CLIENT, f"staff:{client}")
        return render(
            request,
            "staff/login.html",
            status_code=400,
            username=username,
            error=gettext("The username or password is not correct."),
        )
    keep = {k: v for k, v in request.session.items() if k in ("lang",)}
    request.set_session(
        {
            ROTATE_KEY: True,
            **keep,
            "staff": {
                "id": user.id,
                "name": user.display_name,
                "role": user.role,
                "branch": user.branch_id or 1,
            },
        }
    )
    await circulation.audit(db, user.id, "login", username)
    await db.commit()
    return redirect(request.app.route_reverse("staff:counter"))


@post("/staff/logout", name="staff:logout")
async def logout(request: Request) -> object:
    request.clear_session()
    return redirect(request.app.route_reverse("staff:login"))


async def _counter_context(db: AsyncSession, staff: StaffSession, today: dt.date) -> dict[str, Any]:
    branch = await db.get_one(Branch, staff.branch_id)
    shelf = (
        await db.execute(
            select(
                Hold.id,
                Hold.shelf_until,
                Hold.contact,
                Bib.title,
                Patron.card_number,
                Patron.name,
                Patron.phone,
            )
            .join(Bib, Bib.id == Hold.bib_id)
            .join(Patron, Patron.id == Hold.patron_id)
            .where(Hold.status == "ready", Hold.pickup_branch_id == staff.branch_id)
            .order_by(Hold.shelf_until, Hold.id)
        )
    ).all()
    failed = await db.scalar(select(func.count()).where(Notice.status == "failed")) or 0
    return {
        "branch": branch,
        "shelf": shelf,
        "calls": [r for r in shelf if r.contact == "phone"],
        "failed_notices": failed,
        "staff": staff,
    }


@get("/staff", name="staff:counter")
async def counter(
    request: Request, staff: NamedDependency[StaffSession], db: NamedDependency[AsyncSession]
) -> object:
    result = request.session.pop("counter_result", None)
    patron = await _patron_summary(db, _text(request.query_params.get("card")), clock.today())
    return render(
        request,
        "staff/counter.html",
        block="counter",
        result=result,
        patron_info=patron,
        result_titles=RESULT_TITLES,
        **await _counter_context(db, staff, clock.today()),
    )


async def _patron_summary(db: AsyncSession, card: str, today: dt.date) -> dict[str, Any] | None:
    if not card:
        return None
    patron = await db.scalar(select(Patron).where(Patron.card_number == accounts.normalize_digits(card)[:20]))
    if patron is None:
        return {"missing": card}
    loans = (
        await db.execute(
            select(Bib.title, Loan.due_on, Item.barcode)
            .join(Item, Item.id == Loan.item_id)
            .join(Bib, Bib.id == Item.bib_id)
            .where(Loan.patron_id == patron.id, Loan.returned_on.is_(None))
            .order_by(Loan.due_on)
        )
    ).all()
    return {
        "patron": patron,
        "loans": loans,
        "expired": patron.card_expires_on < today,
        "overdue": sum(1 for loan in loans if loan.due_on < today),
    }


async def _answer(request: Request, db: AsyncSession, staff: StaffSession, result: dict[str, Any]) -> object:
    if wants_fragment(request):
        return render(
            request,
            "staff/counter.html",
            block="counter",
            result=result,
            patron_info=None,
            result_titles=RESULT_TITLES,
            status_code=400 if result.get("error") else 200,
            **await _counter_context(db, staff, clock.today()),
        )
    request.session["counter_result"] = result
    return redirect(request.app.route_reverse("staff:counter"))


def _outcome(outcome: circulation.Outcome) -> dict[str, Any]:
    return {
        "action": outcome.action,
        "barcode": outcome.barcode,
        "title": outcome.title,
        "patron": outcome.patron_name,
        "due_on": outcome.due_on.isoformat() if outcome.due_on else None,
        "hold_patron": outcome.hold_patron,
        "pickup": outcome.pickup_branch,
        "shelf_until": outcome.shelf_until.isoformat() if outcome.shelf_until else None,
    }


async def _run(request: Request, db: AsyncSession, staff: StaffSession, action) -> object:  # type: ignore[no-untyped-def]
    try:
        result = _outcome(await action())
    except circulation.CirculationRefused as refused:
        await db.rollback()
        result = {"error": gettext(circulation.REFUSALS[refused.reason])}
    return await _answer(request, db, staff, result)


@post("/staff/checkout", name="staff:checkout")
async def checkout(
    request: Request,
    staff: NamedDependency[StaffSession],
    db: NamedDependency[AsyncSession],
    policy: NamedDependency[Policy],
) -> object:
    form = await request.form()
    return await _run(
        request,
        db,
        staff,
        lambda: circulation.checkout(
            db,
            card=_text(form.get("card_number")),
            barcode=_text(form.get("barcode")),
            branch_id=staff.branch_id,
            staff_id=staff.id,
            today=clock.today(),
            policy=policy,
        ),
    )


async def _by_barcode(
    request: Request, db: AsyncSession, staff: StaffSession, policy: Policy, action
) -> object:  # type: ignore[no-untyped-def]
    """Return and receive: one barcode, at the staff member's branch."""
    form = await request.form()
    return await _run(
        request,
        db,
        staff,
        lambda: action(
            db,
            barcode=_text(form.get("barcode")),
            branch_id=staff.branch_id,
            staff_id=staff.id,
            today=clock.today(),
            policy=policy,
        ),
    )


@post("/staff/return", name="staff:return")
async def checkin(
    request: Request,
    staff: NamedDependency[StaffSession],
    db: NamedDependency[AsyncSession],
    policy: NamedDependency[Policy],
) -> object:
    return await _by_barcode(request, db, staff, policy, circulation.checkin)


@post("/staff/receive", name="staff:receive")
async def receive(
    request: Request,
    staff: NamedDependency[StaffSession],
    db: NamedDependency[AsyncSession],
    policy: NamedDependency[Policy],
) -> object:
    return await _by_barcode(request, db, staff, policy, circulation.receive)


@post("/staff/holds/{hold_id:int}/collect", name="staff:collect")
async def collect(
    request: Request,
    hold_id: RecordId,
    staff: NamedDependency[StaffSession],
    db: NamedDependency[AsyncSession],
    policy: NamedDependency[Policy],
) -> object:
    return await _run(
        request,
        db,
        staff,
        lambda: circulation.collect(
            db,
            hold_id=hold_id,
            branch_id=staff.branch_id,
            staff_id=staff.id,
            today=clock.today(),
            policy=policy,
        ),
    )


@post("/staff/temporary-password", name="staff:temporary_password")
async def temporary_password(
    request: Request,
    staff: NamedDependency[StaffSession],
    db: NamedDependency[AsyncSession],
    policy: NamedDependency[Policy],
) -> object:
    form = await request.form()
    try:
        name, password = await circulation.issue_temporary_password(
            db, card=_text(form.get("card_number")), staff_id=staff.id, policy=policy
        )
        result: dict[str, Any] = {"action": "temporary_password", "patron": name, "password": password}
    except circulation.CirculationRefused as refused:
        result = {"error": gettext(circulation.REFUSALS[refused.reason])}
    if wants_fragment(request):
        return await _answer(request, db, staff, result)
    # Shown once, on the page the POST answers (not kept in the session for a reload).
    return render(
        request,
        "staff/counter.html",
        result=result,
        patron_info=None,
        result_titles=RESULT_TITLES,
        status_code=400 if result.get("error") else 200,
        **await _counter_context(db, staff, clock.today()),
    )


@get("/staff/calendar", name="staff:calendar")
async def calendar_page(
    request: Request, staff: NamedDependency[StaffSession], db: NamedDependency[AsyncSession]
) -> object:
    today = clock.today()
    rows = (
        await db.execute(
            select(ClosedDay.id, ClosedDay.day, ClosedDay.note, Branch.name_ja, Branch.name_en)
            .join(Branch, Branch.id == ClosedDay.branch_id)
            .where(ClosedDay.day >= today)
            .order_by(ClosedDay.day, Branch.id)
        )
    ).all()
    branches = (await db.execute(select(Branch.id, Branch.name_ja, Branch.name_en).order_by(Branch.id))).all()
    return render(request, "staff/calendar.html", days=rows, branches=branches, error=None, staff=staff)


@post("/staff/calendar", name="staff:calendar_add")
async def calendar_add(
    request: Request, staff: NamedDependency[StaffSession], db: NamedDependency[AsyncSession]
) -> object:
    form = await request.form()
    branch_id = _text(form.get("branch"))
    try:
        day = dt.date.fromisoformat(_text(form.get("day"), 10))
    except ValueError:
        day = None
    valid_branch = branch_id.isdigit() and await db.get(Branch, int(branch_id)) is not None
    if day is None or not valid_branch:
        request.session["flash"] = [["error", gettext("Choose a library and a date (YYYY-MM-DD).")]]
        return redirect(request.app.route_reverse("staff:calendar"))
    exists = await db.scalar(
        select(ClosedDay.id).where(ClosedDay.branch_id == int(branch_id), ClosedDay.day == day)
    )
    if exists is None:
        db.add(ClosedDay(branch_id=int(branch_id), day=day, note=_text(form.get("note"), 200)))
        await circulation.audit(db, staff.id, "closed_day_add", f"{branch_id} {day}")
        await db.commit()
    return redirect(request.app.route_reverse("staff:calendar"))


@post("/staff/calendar/{day_id:int}/delete", name="staff:calendar_delete")
async def calendar_delete(
    request: Request,
    day_id: RecordId,
    staff: NamedDependency[StaffSession],
    db: NamedDependency[AsyncSession],
) -> object:
    if await db.get(ClosedDay, day_id) is None:
        raise NotFoundException()
    await db.execute(delete(ClosedDay).where(ClosedDay.id == day_id))
    await circulation.audit(db, staff.id, "closed_day_delete", str(day_id))
    await db.commit()
    return redirect(request.app.route_reverse("staff:calendar"))


@get("/staff/notices", name="staff:notices")
async def failed_notices(
    request: Request, staff: NamedDependency[StaffSession], db: NamedDependency[AsyncSession]
) -> object:
    rows = (
        await db.execute(
            select(
                Notice.id,
                Notice.type,
                Notice.created_at,
                Notice.attempts,
                Notice.last_error,
                Patron.card_number,
                Patron.name,
            )
            .join(Patron, Patron.id == Notice.patron_id)
            .where(Notice.status == "failed")
            .order_by(Notice.id.desc())
            .limit(200)
        )
    ).all()
    return render(request, "staff/notices.html", notices=rows, staff=staff)

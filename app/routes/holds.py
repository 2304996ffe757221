"""Placing holds from the cart (one by one or in series order) and the Holds page's actions."""

from __future__ import annotations

from litestar import Request, get, post
from litestar.datastructures import FormMultiDict
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from sqlalchemy.ext.asyncio import AsyncSession

from app import clock
from app.i18n import N_, gettext
from app.models import Patron
from app.policy import Policy
from app.routes._deps import RecordId
from app.routes._render import flash, redirect, render, wants_fragment
from app.services import cart as cart_service
from app.services import holds
from app.services.accounts import SessionPatron
from app.tasks.queue import kick_mailer


def _bib_ids(form: FormMultiDict) -> list[int]:
    values = [str(v).strip() for v in form.getall("bib")] if "bib" in form else []
    return list(dict.fromkeys(int(v) for v in values if v.isdigit() and len(v) < 10))[
        : cart_service.MAX_ENTRIES
    ]


def form_message(reason: str) -> str:
    return gettext(holds.FORM_MESSAGES[reason])


def refusal_message(reason: str, policy: Policy) -> str:
    return gettext(holds.REFUSAL_MESSAGES[reason], limit=policy.hold_limit)


async def _form_context(db: AsyncSession, patron: SessionPatron, policy: Policy, bib_ids: list[int]) -> dict:  # type: ignore[type-arg]
    entries = await cart_service.entries(db, bib_ids)
    blocks = await holds.patron_blocks(db, patron.id, today=clock.today(), policy=policy)
    home = await db.get(Patron, patron.id)
    return {
        "entries": entries,
        "pickups": await holds.pickup_choices(db),
        "contacts": await holds.contact_choices(db, patron.id, policy),
        "blocks": [refusal_message(r, policy) for r in blocks.reasons],
        "default_branch": home.home_branch_id if home else None,
        "default_contact": home.default_contact if home else None,
        "contact_labels": holds.CONTACT_LABELS,
        "chosen": {},
    }


@post("/holds/confirm", name="holds:confirm")
async def confirm(
    request: Request,
    patron: NamedDependency[SessionPatron],
    db: NamedDependency[AsyncSession],
    policy: NamedDependency[Policy],
) -> object:
    """Step 2 of reserving: the ticked titles, where to collect them and how to be told."""
    form = await request.form()
    bib_ids = _bib_ids(form)
    if not bib_ids:
        flash(request, form_message("nothing"), "error")
        return redirect(request.app.route_reverse("cart:page"))
    context = await _form_context(db, patron, policy, bib_ids)
    return render(request, "holds/confirm.html", error=None, ordered=False, **context)


@post("/holds/order", name="holds:order")
async def order(
    request: Request,
    patron: NamedDependency[SessionPatron],
    db: NamedDependency[AsyncSession],
    policy: NamedDependency[Policy],
) -> object:
    """Reserve in order (順番予約): the ticked volumes, numbered in reading order (series order first)."""
    form = await request.form()
    bib_ids = _bib_ids(form)
    if not bib_ids:
        flash(request, form_message("nothing"), "error")
        return redirect(request.app.route_reverse("cart:page"))
    context = await _form_context(db, patron, policy, bib_ids)
    context["entries"] = sorted(
        context["entries"], key=lambda e: (e.series_id or 0, e.series_volume or 0, e.id)
    )
    move = str(form.get("move", ""))
    if move:
        # Up/down buttons: swap one entry with its neighbour, then show the list again.
        direction, _, bib = move.partition(":")
        ids = [e.id for e in context["entries"]]
        current = [int(v) for v in str(form.get("current_order", "")).split(",") if v.isdigit()]
        if sorted(current) == sorted(ids):
            ids = current
        if bib.isdigit() and int(bib) in ids:
            i = ids.index(int(bib))
            j = i - 1 if direction == "up" else i + 1
            if 0 <= j < len(ids):
                ids[i], ids[j] = ids[j], ids[i]
        by_id = {e.id: e for e in context["entries"]}
        context["entries"] = [by_id[i] for i in ids]
        context["chosen"] = {"pickup": form.get("pickup"), "contact": form.get("contact")}
        return render(request, "holds/confirm.html", block="order_list", error=None, ordered=True, **context)
    return render(request, "holds/confirm.html", error=None, ordered=True, **context)


@post("/holds/place", name="holds:place")
async def place(
    request: Request,
    patron: NamedDependency[SessionPatron],
    db: NamedDependency[AsyncSession],
    policy: NamedDependency[Policy],
) -> object:
    form = await request.form()
    bib_ids = _bib_ids(form)
    ordered = form.get("ordered") == "1"
    try:
        if not bib_ids:
            raise holds.HoldFormError("nothing")
        if ordered:
            bib_ids = holds.parse_order(bib_ids, {b: form.get(f"position_{b}") for b in bib_ids})
        choice = await holds.check_request(
            db,
            patron.id,
            policy,
            pickup=form.get("pickup"),
            location=form.get("location"),
            contact=form.get("contact"),
            email=form.get("email"),
        )
    except holds.HoldFormError as problem:
        context = await _form_context(db, patron, policy, bib_ids)
        context["chosen"] = {k: form.get(k) for k in ("pickup", "location", "contact", "email")}
        return render(
            request,
            "holds/confirm.html",
            status_code=400,
            error=form_message(problem.reason),
            ordered=ordered,
            **context,
        )
    results = await holds.place_holds(
        db, patron.id, bib_ids, choice, now=clock.now(), today=clock.today(), policy=policy, ordered=ordered
    )
    placed = {r.bib_id for r in results if r.placed}
    if placed:
        await kick_mailer(request.app.state.arq, request.app.state.settings.redis_namespace)
    request.session["cart"] = [b for b in cart_service.ids_in(request.session) if b not in placed]
    request.session["hold_results"] = [
        [r.title, r.placed, refusal_message(r.reason, policy) if r.reason else "", r.position]
        for r in results
    ]
    return redirect(request.app.route_reverse("holds:placed"))


@get("/holds/placed", name="holds:placed")
async def placed_page(request: Request, patron: NamedDependency[SessionPatron]) -> object:
    """The result of the last "Place holds", one line per title (shown once, after the redirect)."""
    results = request.session.pop("hold_results", None)
    if results is None:
        return redirect(request.app.route_reverse("holds:list"))
    return render(request, "holds/placed.html", results=results)


@get("/holds", name="holds:list")
async def holds_page(
    request: Request,
    patron: NamedDependency[SessionPatron],
    db: NamedDependency[AsyncSession],
    policy: NamedDependency[Policy],
) -> object:
    hold_list = await holds.list_holds(db, patron.id, today=clock.today(), policy=policy)
    return render(
        request, "holds/list.html", block="holds", holds=hold_list, **await _row_context(db, patron, policy)
    )


async def _row_context(db: AsyncSession, patron: SessionPatron, policy: Policy) -> dict:  # type: ignore[type-arg]
    # No pickup or contact choices: a card links to its change form (holds:change) instead of
    # carrying two option lists per hold.
    return {
        "status_labels": holds.STATUS_LABELS,
        "contact_labels": holds.CONTACT_LABELS,
        "row_message": None,
        "today": clock.today(),
    }


@get("/holds/{hold_id:int}/change", name="holds:change")
async def change_form(
    request: Request,
    hold_id: RecordId,
    patron: NamedDependency[SessionPatron],
    db: NamedDependency[AsyncSession],
    policy: NamedDependency[Policy],
) -> object:
    """The pickup and contact forms of one hold: a page without JavaScript, loaded into its card with htmx."""
    return render(
        request,
        "holds/change.html",
        block="change",
        hold=await _hold_or_404(db, patron, policy, hold_id),
        contact_labels=holds.CONTACT_LABELS,
        pickups=await holds.pickup_choices(db),
        contacts=await holds.contact_choices(db, patron.id, policy),
    )


async def _after_change(
    request: Request,
    db: AsyncSession,
    patron: SessionPatron,
    policy: Policy,
    hold_id: int,
    message: str,
    level: str = "ok",
    status: int = 200,
) -> object:
    if wants_fragment(request):
        hold = await holds.get_hold(db, patron.id, hold_id, today=clock.today(), policy=policy)
        context = await _row_context(db, patron, policy)
        context["row_message"] = (level, message)
        return render(request, "holds/_row.html", status_code=status, hold=hold, **context)
    flash(request, message, level)
    return redirect(request.app.route_reverse("holds:list"))


async def _guarded(
    request: Request,
    db: AsyncSession,
    patron: SessionPatron,
    policy: Policy,
    hold_id: int,
    action,
    ok_message: str,
) -> object:  # type: ignore[no-untyped-def]
    try:
        await action()
    except holds.HoldNotFound as exc:
        raise NotFoundException() from exc
    except holds.HoldFormError as problem:
        return await _after_change(
            request, db, patron, policy, hold_id, form_message(problem.reason), "error", 400
        )
    return await _after_change(request, db, patron, policy, hold_id, gettext(ok_message))


@get("/holds/{hold_id:int}/cancel", name="holds:cancel_confirm")
async def cancel_confirm(
    request: Request,
    hold_id: RecordId,
    patron: NamedDependency[SessionPatron],
    db: NamedDependency[AsyncSession],
    policy: NamedDependency[Policy],
) -> object:
    """The confirmation step for cancelling without JavaScript (with htmx, hx-confirm asks instead)."""
    return render(request, "holds/cancel.html", hold=await _hold_or_404(db, patron, policy, hold_id))


@post("/holds/{hold_id:int}/cancel", name="holds:cancel")
async def cancel(
    request: Request,
    hold_id: RecordId,
    patron: NamedDependency[SessionPatron],
    db: NamedDependency[AsyncSession],
    policy: NamedDependency[Policy],
) -> object:
    return await _guarded(
        request,
        db,
        patron,
        policy,
        hold_id,
        lambda: holds.cancel(db, patron.id, hold_id, now=clock.now()),
        N_("Your hold was cancelled."),
    )


@post("/holds/{hold_id:int}/pickup", name="holds:pickup")
async def change_pickup(
    request: Request,
    hold_id: RecordId,
    patron: NamedDependency[SessionPatron],
    db: NamedDependency[AsyncSession],
    policy: NamedDependency[Policy],
) -> object:
    form = await request.form()

    async def action() -> None:
        current = await _must_own(db, patron, policy, hold_id)
        choice = await holds.check_request(
            db,
            patron.id,
            policy,
            pickup=form.get("pickup"),
            location=holds.location_for_pickup(current, form.get("pickup"), form.get("location")),
            contact=current.contact,
            email=current.email_id,
        )
        await holds.change_pickup(db, patron.id, hold_id, choice)

    return await _guarded(request, db, patron, policy, hold_id, action, N_("The pickup library was changed."))


@post("/holds/{hold_id:int}/contact", name="holds:contact")
async def change_contact(
    request: Request,
    hold_id: RecordId,
    patron: NamedDependency[SessionPatron],
    db: NamedDependency[AsyncSession],
    policy: NamedDependency[Policy],
) -> object:
    form = await request.form()

    async def action() -> None:
        current = await _must_own(db, patron, policy, hold_id)
        choice = await holds.check_request(
            db,
            patron.id,
            policy,
            pickup=current.pickup_branch_id,
            location=current.pickup_location_id or "",
            contact=form.get("contact"),
            email=form.get("email"),
        )
        await holds.change_contact(db, patron.id, hold_id, choice)

    return await _guarded(request, db, patron, policy, hold_id, action, N_("The contact method was changed."))


@post("/holds/{hold_id:int}/suspend", name="holds:suspend")
async def suspend(
    request: Request,
    hold_id: RecordId,
    patron: NamedDependency[SessionPatron],
    db: NamedDependency[AsyncSession],
    policy: NamedDependency[Policy],
) -> object:
    form = await request.form()

    async def action() -> None:
        await _must_own(db, patron, policy, hold_id)
        until = holds.parse_suspend_date(form.get("until"), clock.today())
        await holds.suspend(db, patron.id, hold_id, until)

    return await _guarded(
        request,
        db,
        patron,
        policy,
        hold_id,
        action,
        N_("Your hold is suspended. It keeps its place in the queue."),
    )


@post("/holds/{hold_id:int}/resume", name="holds:resume")
async def resume(
    request: Request,
    hold_id: RecordId,
    patron: NamedDependency[SessionPatron],
    db: NamedDependency[AsyncSession],
    policy: NamedDependency[Policy],
) -> object:
    return await _guarded(
        request,
        db,
        patron,
        policy,
        hold_id,
        lambda: holds.resume(db, patron.id, hold_id),
        N_("Your hold is active again."),
    )


async def _hold_or_404(
    db: AsyncSession, patron: SessionPatron, policy: Policy, hold_id: int
) -> holds.HoldView:
    """One of this patron's holds for a page; another patron's (or none) is 404."""
    try:
        return await _must_own(db, patron, policy, hold_id)
    except holds.HoldNotFound as exc:
        raise NotFoundException() from exc


async def _must_own(db: AsyncSession, patron: SessionPatron, policy: Policy, hold_id: int) -> holds.HoldView:
    return await holds.get_hold(db, patron.id, hold_id, today=clock.today(), policy=policy)

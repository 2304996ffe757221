"""The patron's email addresses: add (a link is mailed), confirm by POST, remove, make default."""

from __future__ import annotations

from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromQuery
from sqlalchemy.ext.asyncio import AsyncSession

from app import clock
from app.i18n import gettext
from app.policy import Policy
from app.routes._deps import RecordId
from app.routes._render import flash, redirect, render, session_patron
from app.services import emails
from app.services.accounts import SessionPatron
from app.tasks.queue import kick_mailer


def _message(problem: emails.EmailRefused, policy: Policy) -> str:
    return gettext(emails.MESSAGES[problem.reason], max=policy.max_emails, detail=problem.detail)


@get("/account/emails", name="emails:list")
async def emails_page(
    request: Request,
    patron: NamedDependency[SessionPatron],
    db: NamedDependency[AsyncSession],
    policy: NamedDependency[Policy],
) -> object:
    return render(
        request,
        "account/emails.html",
        addresses=await emails.list_addresses(db, patron.id),
        error=None,
        typed="",
    )


@post("/account/emails", name="emails:add")
async def add(
    request: Request,
    patron: NamedDependency[SessionPatron],
    db: NamedDependency[AsyncSession],
    policy: NamedDependency[Policy],
) -> object:
    form = await request.form()
    typed = str(form.get("address", ""))[:300]
    try:
        await emails.add(db, patron.id, typed, policy=policy, now=clock.now())
    except emails.EmailRefused as problem:
        await db.rollback()
        return render(
            request,
            "account/emails.html",
            status_code=400,
            addresses=await emails.list_addresses(db, patron.id),
            error=_message(problem, policy),
            typed=typed,
        )
    await kick_mailer(request.app.state.arq, request.app.state.settings.redis_namespace)
    flash(
        request,
        gettext(
            "We have sent a confirmation link to %(address)s. Open it to start using the address.",
            address=typed.strip(),
        ),
        "ok",
    )
    return redirect(request.app.route_reverse("emails:list"))


@post("/account/emails/{email_id:int}/remove", name="emails:remove")
async def remove(
    request: Request,
    email_id: RecordId,
    patron: NamedDependency[SessionPatron],
    db: NamedDependency[AsyncSession],
) -> object:
    try:
        await emails.remove(db, patron.id, email_id)
    except emails.EmailNotFound as exc:
        raise NotFoundException() from exc
    flash(request, gettext("The address was removed."), "ok")
    return redirect(request.app.route_reverse("emails:list"))


@post("/account/emails/{email_id:int}/default", name="emails:default")
async def make_default(
    request: Request,
    email_id: RecordId,
    patron: NamedDependency[SessionPatron],
    db: NamedDependency[AsyncSession],
    policy: NamedDependency[Policy],
) -> object:
    try:
        await emails.make_default(db, patron.id, email_id)
    except emails.EmailNotFound as exc:
        raise NotFoundException() from exc
    except emails.EmailRefused as problem:
        flash(request, _message(problem, policy), "error")
        return redirect(request.app.route_reverse("emails:list"))
    flash(request, gettext("This address is now used for your holds by default."), "ok")
    return redirect(request.app.route_reverse("emails:list"))


@get("/account/emails/confirm", name="emails:confirm_page")
async def confirm_page(
    request: Request,
    db: NamedDependency[AsyncSession],
    policy: NamedDependency[Policy],
    token: FromQuery[str] = "",
) -> object:
    """Opening the link changes nothing (mail scanners open links): the button confirms."""
    try:
        email = await emails.find_by_token(db, token[:200], now=clock.now())
    except emails.EmailRefused as problem:
        return render(
            request,
            "account/email_confirm.html",
            status_code=400,
            error=_message(problem, policy),
            token="",
            address="",
        )
    return render(request, "account/email_confirm.html", error=None, token=token[:200], address=email.address)


@post("/account/emails/confirm", name="emails:confirm")
async def confirm(
    request: Request, db: NamedDependency[AsyncSession], policy: NamedDependency[Policy]
) -> object:
    form = await request.form()
    patron = session_patron(request)
    try:
        email = await emails.confirm(
            db, str(form.get("token", ""))[:200], now=clock.now(), patron_id=patron.id if patron else None
        )
    except emails.EmailRefused as problem:
        return render(
            request,
            "account/email_confirm.html",
            status_code=400,
            error=_message(problem, policy),
            token="",
            address="",
        )
    message = gettext("%(address)s is confirmed. Library mail will now reach it.", address=email.address)
    if patron is None:
        return render(request, "account/email_confirm.html", error=None, token="", address="", done=message)
    flash(request, message, "ok")
    return redirect(request.app.route_reverse("emails:list"))

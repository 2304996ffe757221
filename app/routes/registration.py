"""Password registration and re-issue online, and the temporary password by mail."""

from __future__ import annotations

import time

from litestar import Request, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from sqlalchemy.ext.asyncio import AsyncSession

from app import clock
from app.i18n import gettext
from app.models import Patron
from app.policy import Policy
from app.routes._render import flash, redirect, render
from app.services import emails, registration
from app.services.accounts import SessionPatron
from app.services.passwords import RULE_MESSAGES, PasswordRuleBroken
from app.sessions import ROTATE_KEY
from app.tasks.queue import kick_mailer

STEP_SECONDS = 15 * 60  # the identity check stays good this long


def _msg(key: str) -> str:
    text = registration.MESSAGES[key]
    return gettext(text)


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@get("/password/register", name="password:terms")
async def terms(request: Request) -> object:
    return render(request, "account/register_terms.html", error=None)


@post("/password/register", name="password:agree")
async def agree(request: Request) -> object:
    form = await request.form()
    if form.get("agree") != "yes":
        return render(
            request,
            "account/register_terms.html",
            status_code=400,
            error=_msg("terms"),
        )
    request.session["pw_terms"] = True
    return redirect(request.app.route_reverse("password:identity"))


@get("/password/register/identity", name="password:identity")
async def identity_page(request: Request) -> object:
    if not request.session.get("pw_terms"):
        return redirect(request.app.route_reverse("password:terms"))
    return render(request, "account/register_identity.html", error=None, values={})


@post("/password/register/identity", name="password:identity_post")
async def identity(
    request: Request, db: NamedDependency[AsyncSession], state: State, policy: NamedDependency[Policy]
) -> object:
    if not request.session.get("pw_terms"):
        return redirect(request.app.route_reverse("password:terms"))
    form = await request.form()
    values = {k: str(form.get(k, ""))[:60] for k in ("card_number", "birth", "phone", "kana")}
    try:
        patron = await registration.check_identity(
            db,
            card_input=values["card_number"],
            birth_input=values["birth"],
            phone_input=values["phone"],
            kana_input=values["kana"],
            client=_client(request),
            policy=policy,
            limiter=state.limiter,
            today=clock.today(),
        )
    except registration.IdentityRefused as refused:
        status = 429 if refused.reason == "rate_limited" else 400
        return render(
            request,
            "account/register_identity.html",
            status_code=status,
            values=values,
            error=_msg(refused.reason),
        )
    request.session["pw_reg"] = {"pid": patron.id, "at": time.time()}
    return redirect(request.app.route_reverse("password:new"))


def _verified_patron(request: Request) -> int | None:
    step = request.session.get("pw_reg")
    if not step or time.time() - float(step.get("at", 0)) > STEP_SECONDS:
        return None
    return int(step["pid"])


@get("/password/register/new", name="password:new")
async def new_page(request: Request) -> object:
    if _verified_patron(request) is None:
        return redirect(request.app.route_reverse("password:terms"))
    return render(request, "account/register_new.html", error=None)


@post("/password/register/new", name="password:new_post")
async def set_new(
    request: Request, db: NamedDependency[AsyncSession], policy: NamedDependency[Policy]
) -> object:
    patron_id = _verified_patron(request)
    if patron_id is None:
        return redirect(request.app.route_reverse("password:terms"))
    form = await request.form()
    try:
        await registration.set_password(
            db,
            patron_id,
            str(form.get("new_password", "")),
            str(form.get("confirm_password", "")),
            policy=policy,
            now=clock.now(),
        )
    except PasswordRuleBroken as broken:
        return render(
            request,
            "account/register_new.html",
            status_code=400,
            error=gettext(RULE_MESSAGES[broken.rule], **broken.params),
        )
    address = str(form.get("email", "")).strip()[:300]
    if address:
        # Koga: an address given here is confirmed by a mailed link, with the patron's two choices.
        try:
            await emails.add(
                db,
                patron_id,
                address,
                policy=policy,
                now=clock.now(),
                make_default=form.get("use_for_notices") == "yes",
                for_holds=form.get("use_for_holds") == "yes",
            )
            await kick_mailer(request.app.state.arq, request.app.state.settings.redis_namespace)
        except emails.EmailRefused as problem:
            await db.rollback()
            flash(
                request,
                gettext(emails.MESSAGES[problem.reason], max=policy.max_emails, detail=problem.detail),
                "error",
            )
    patron = await db.get_one(Patron, patron_id)
    session_patron = SessionPatron(
        patron.id, patron.card_number, patron.name, patron.name_en, "permanent", patron.card_expires_on
    )
    cart = request.session.get("cart", [])
    # Fukushima: パスワードの登録完了後はログインした状態です — logged in, with a new session id.
    request.set_session({ROTATE_KEY: True, **session_patron.session_data, "cart": cart})
    flash(request, gettext("Your password is registered. You are now logged in."), "ok")
    return redirect(request.app.route_reverse("pages:mylibrary"))


@get("/password/temporary", name="password:temporary")
async def temporary_page(request: Request) -> object:
    return render(request, "account/temporary_password.html", error=None, done=False)


@post("/password/temporary", name="password:temporary_post")
async def temporary(
    request: Request, db: NamedDependency[AsyncSession], state: State, policy: NamedDependency[Policy]
) -> object:
    form = await request.form()
    if form.get("agree") != "yes":
        return render(
            request,
            "account/temporary_password.html",
            status_code=400,
            done=False,
            error=_msg("terms"),
        )
    try:
        await registration.request_temporary_password(
            db,
            card_input=str(form.get("card_number", "")),
            email_input=str(form.get("email", "")),
            client=_client(request),
            policy=policy,
            limiter=state.limiter,
            now=clock.now(),
        )
    except registration.IdentityRefused as refused:
        return render(
            request,
            "account/temporary_password.html",
            status_code=429,
            done=False,
            error=_msg(refused.reason),
        )
    await kick_mailer(request.app.state.arq, request.app.state.settings.redis_namespace)
    return render(request, "account/temporary_password.html", error=None, done=True)

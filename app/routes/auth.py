"""Log in, log out and password change for patrons."""

from __future__ import annotations

from litestar import Request, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromQuery
from litestar.response import Redirect
from sqlalchemy.ext.asyncio import AsyncSession

from app import clock
from app.i18n import get_language, gettext
from app.policy import Policy
from app.routes._render import flash, redirect, render, safe_next, session_patron
from app.services import accounts, holds, preferences
from app.services.accounts import SessionPatron
from app.services.passwords import RULE_MESSAGES, PasswordRuleBroken
from app.sessions import ROTATE_KEY


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _login_message(reason: str, policy: NamedDependency[Policy]) -> str:
    prefix = gettext(", starting with %(prefix)s", prefix=policy.card_prefix) if policy.card_prefix else ""
    return gettext(accounts.LOGIN_MESSAGES[reason], length=policy.card_length, prefix=prefix)


@get("/login", name="auth:login")
async def login_page(
    request: Request, next: FromQuery[str | None] = None, logged_out: FromQuery[bool] = False
) -> object:
    if session_patron(request) is not None:
        return redirect(safe_next(next))
    return render(
        request, "auth/login.html", next=safe_next(next), logged_out=logged_out, error=None, card_number=""
    )


@post("/login", name="auth:login_post")
async def login(
    request: Request, db: NamedDependency[AsyncSession], state: State, policy: NamedDependency[Policy]
) -> object:
    form = await request.form()
    card_input = str(form.get("card_number", ""))[:200]
    password = str(form.get("password", ""))
    target = safe_next(str(form.get("next", "")))
    try:
        patron = await accounts.authenticate(
            db,
            card_input=card_input,
            password=password,
            client=_client(request),
            policy=policy,
            limiter=state.limiter,
        )
    except accounts.LoginRefused as refused:
        return render(
            request,
            "auth/login.html",
            status_code=400 if refused.reason != "rate_limited" else 429,
            next=target,
            error=_login_message(refused.reason, policy),
            card_number=card_input[:40],
        )
    await accounts.record_language(db, patron.id, get_language())
    # A new session id at log-in: whatever id the browser came with is discarded.
    # The cart a guest filled comes along into the new session.
    cart = request.session.get("cart", [])
    request.set_session({ROTATE_KEY: True, **patron.session_data, "cart": cart})
    if patron.password_state == "temporary":
        return redirect(request.app.route_reverse("account:password"))
    return redirect(target)


@post("/logout", name="auth:logout")
async def logout(request: Request) -> Redirect:
    request.clear_session()  # deleted from the server's store, not just forgotten by the browser
    return redirect(request.app.route_reverse("auth:login") + "?logged_out=1")


@get("/account/password", name="account:password", opt={"temporary_ok": True})
async def password_page(request: Request, patron: NamedDependency[SessionPatron]) -> object:
    return render(request, "account/password.html", error=None, forced=patron.password_state == "temporary")


@post("/account/password", name="account:password_post", opt={"temporary_ok": True})
async def change_password(
    request: Request,
    patron: NamedDependency[SessionPatron],
    db: NamedDependency[AsyncSession],
    policy: NamedDependency[Policy],
) -> object:
    form = await request.form()
    try:
        await accounts.change_password(
            db,
            patron.id,
            current=str(form.get("current_password", "")),
            new=str(form.get("new_password", "")),
            confirm=str(form.get("confirm_password", "")),
            policy=policy,
            now=clock.now(),
        )
    except PasswordRuleBroken as broken:
        message = gettext(RULE_MESSAGES[broken.rule], **broken.params)
        return render(
            request,
            "account/password.html",
            status_code=400,
            error=message,
            forced=patron.password_state == "temporary",
        )
    request.session["pw"] = "permanent"
    flash(request, gettext("Your password has been changed."), "ok")
    return redirect(request.app.route_reverse("pages:mylibrary"))


@get("/account/notices", name="account:notices")
async def notices_page(
    request: Request,
    patron: NamedDependency[SessionPatron],
    db: NamedDependency[AsyncSession],
    policy: NamedDependency[Policy],
) -> object:
    return render(request, "account/notices.html", **await _notice_context(db, patron, policy), error=None)


async def _notice_context(db: AsyncSession, patron: SessionPatron, policy: Policy) -> dict[str, object]:
    return {
        "prefs": await preferences.get(db, patron.id, policy),
        "labels": preferences.NOTICE_LABELS,
        "pickups": await holds.pickup_choices(db),
        "contact_labels": holds.CONTACT_LABELS,
        "contact_methods": policy.contact_methods,
    }


@post("/account/notices", name="account:notices_post")
async def save_notices(
    request: Request,
    patron: NamedDependency[SessionPatron],
    db: NamedDependency[AsyncSession],
    policy: NamedDependency[Policy],
) -> object:
    form = await request.form()
    wanted = {str(v) for v in form.getall("notice")} if "notice" in form else set()
    try:
        await preferences.update(
            db,
            patron.id,
            policy,
            wanted=wanted,
            pickup=str(form.get("pickup", ""))[:10],
            contact=str(form.get("contact", ""))[:10],
        )
    except preferences.PreferenceError as problem:
        return render(
            request,
            "account/notices.html",
            status_code=400,
            **await _notice_context(db, patron, policy),
            error=gettext(preferences.PREFERENCE_MESSAGES[problem.reason]),
        )
    flash(request, gettext("Your settings have been saved."), "ok")
    return redirect(request.app.route_reverse("account:notices"))

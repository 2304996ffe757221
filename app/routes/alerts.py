"""New-arrival alerts: save a search, manage them, and the mail's unsubscribe link (confirmed by POST)."""

from __future__ import annotations

from urllib.parse import parse_qsl

from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from sqlalchemy.ext.asyncio import AsyncSession

from app.i18n import gettext
from app.routes._deps import RecordId
from app.routes._render import flash, redirect, refusal_message, render
from app.services import alerts, catalog
from app.services.accounts import SessionPatron


async def _page(
    request: Request, db: AsyncSession, patron: SessionPatron, error: str | None = None, status: int = 200
) -> object:
    return render(
        request,
        "alerts/index.html",
        status_code=status,
        alerts=await alerts.list_alerts(db, patron.id),
        error=error,
        max_alerts=alerts.MAX_ALERTS,
    )


@get("/alerts", name="alerts:index")
async def index(
    request: Request, patron: NamedDependency[SessionPatron], db: NamedDependency[AsyncSession]
) -> object:
    return await _page(request, db, patron)


@post("/alerts", name="alerts:save")
async def save(
    request: Request, patron: NamedDependency[SessionPatron], db: NamedDependency[AsyncSession]
) -> object:
    """ "Save as alert" on the results page: the search arrives as its query string and is checked again."""
    form = await request.form()
    raw = dict(parse_qsl(str(form.get("search", ""))[:4000]))
    try:
        params = catalog.parse_params(raw, [b.id for b in await catalog.branches(db)])
        await alerts.save(db, patron.id, params, str(form.get("name", ""))[:2000])
    except catalog.SearchError as problem:
        return await _page(request, db, patron, gettext(problem.message), 400)
    except alerts.AlertRefused as problem:
        await db.rollback()
        return await _page(request, db, patron, refusal_message(problem), 400)
    flash(
        request,
        gettext("Saved as an alert. New titles will be mailed to you on the 2nd and 4th Tuesday."),
        "ok",
    )
    return redirect(request.app.route_reverse("alerts:index"))


@post("/alerts/{alert_id:int}", name="alerts:rename")
async def rename(
    request: Request,
    alert_id: RecordId,
    patron: NamedDependency[SessionPatron],
    db: NamedDependency[AsyncSession],
) -> object:
    form = await request.form()
    try:
        await alerts.rename(db, patron.id, alert_id, str(form.get("name", ""))[:2000])
    except alerts.AlertNotFound as exc:
        raise NotFoundException() from exc
    except alerts.AlertRefused as problem:
        await db.rollback()
        return await _page(request, db, patron, refusal_message(problem), 400)
    flash(request, gettext("The alert was saved."), "ok")
    return redirect(request.app.route_reverse("alerts:index"))


@post("/alerts/{alert_id:int}/delete", name="alerts:delete")
async def delete(
    request: Request,
    alert_id: RecordId,
    patron: NamedDependency[SessionPatron],
    db: NamedDependency[AsyncSession],
) -> object:
    try:
        await alerts.remove(db, patron.id, alert_id)
    except alerts.AlertNotFound as exc:
        raise NotFoundException() from exc
    flash(request, gettext("The alert was deleted."), "ok")
    return redirect(request.app.route_reverse("alerts:index"))


@get("/alerts/unsubscribe", name="alerts:unsubscribe_page")
async def unsubscribe_page(request: Request) -> object:
    """The link in the mail: shows a button; nothing changes on GET (mail scanners follow links)."""
    token = str(request.query_params.get("t", ""))[:80]
    known = alerts.patron_from_token(request.app.state.settings.secret_key, token) is not None
    return render(
        request,
        "alerts/unsubscribe.html",
        token=token,
        known=known,
        done=False,
        status_code=200 if known else 404,
    )


@post("/alerts/unsubscribe", name="alerts:unsubscribe")
async def unsubscribe(request: Request, db: NamedDependency[AsyncSession]) -> object:
    form = await request.form()
    token = str(form.get("t", ""))[:80]
    patron_id = alerts.patron_from_token(request.app.state.settings.secret_key, token)
    if patron_id is None:
        raise NotFoundException()
    await alerts.unsubscribe(db, patron_id)
    return render(request, "alerts/unsubscribe.html", token=token, known=True, done=True)

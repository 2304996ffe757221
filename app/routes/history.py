"""Reading history (My本棚): opt in and out (out deletes it, after a confirmation), shelves, CSV."""

from __future__ import annotations

import unicodedata

from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from sqlalchemy.ext.asyncio import AsyncSession

from app.i18n import gettext
from app.routes._deps import RecordId
from app.routes._render import flash, redirect, refusal_message, render
from app.services import history
from app.services.accounts import SessionPatron


def _id(raw: object) -> int | None:
    """A shelf id from a form or query: None for "all", history.UNSORTED for "not on a shelf"."""
    text = unicodedata.normalize("NFKC", str(raw or "")).strip()
    if text in ("", "all"):
        return None
    if not text.isdigit() or len(text) > 9:
        raise NotFoundException()
    return int(text)


async def _page(
    request: Request,
    db: AsyncSession,
    patron_id: int,
    *,
    shelf: int | None = None,
    error: str | None = None,
    status: int = 200,
) -> object:
    kept = await history.is_kept(db, patron_id)
    try:
        rows = await history.entries(db, patron_id, shelf)
    except history.HistoryNotFound as exc:
        raise NotFoundException() from exc
    return render(
        request,
        "history/index.html",
        status_code=status,
        kept=kept,
        rows=rows,
        shelves=await history.shelves(db, patron_id),
        shelf=shelf,
        unsorted=history.UNSORTED,
        error=error,
    )


@get("/history", name="history:index")
async def index(
    request: Request, patron: NamedDependency[SessionPatron], db: NamedDependency[AsyncSession]
) -> object:
    return await _page(request, db, patron.id, shelf=_id(request.query_params.get("shelf")))


@post("/history/settings", name="history:settings")
async def settings(
    request: Request, patron: NamedDependency[SessionPatron], db: NamedDependency[AsyncSession]
) -> object:
    """On: keep from now. Off: deletes the history and shelves, but only once the patron confirms."""
    form = await request.form()
    keep = form.get("keep") == "yes"
    if keep:
        await history.set_kept(db, patron.id, True)
        flash(request, gettext("Your reading history is on: titles you borrow from now on are kept."), "ok")
        return redirect(request.app.route_reverse("history:index"))
    titles = await history.count(db, patron.id)
    if titles and form.get("confirm") != "yes":
        return render(request, "history/confirm_off.html", titles=titles)
    await history.set_kept(db, patron.id, False)
    flash(request, gettext("Your reading history is off and has been deleted."), "ok")
    return redirect(request.app.route_reverse("history:index"))


@post("/history/shelves", name="history:create_shelf")
async def create_shelf(
    request: Request, patron: NamedDependency[SessionPatron], db: NamedDependency[AsyncSession]
) -> object:
    form = await request.form()
    try:
        shelf_id = await history.create_shelf(db, patron.id, str(form.get("name", ""))[:2000])
    except history.HistoryRefused as problem:
        await db.rollback()
        return await _page(request, db, patron.id, error=refusal_message(problem), status=400)
    return redirect(request.app.route_reverse("history:index") + f"?shelf={shelf_id}")


@post("/history/shelves/{shelf_id:int}", name="history:rename_shelf")
async def rename_shelf(
    request: Request,
    shelf_id: RecordId,
    patron: NamedDependency[SessionPatron],
    db: NamedDependency[AsyncSession],
) -> object:
    form = await request.form()
    try:
        await history.rename_shelf(db, patron.id, shelf_id, str(form.get("name", ""))[:2000])
    except history.HistoryNotFound as exc:
        raise NotFoundException() from exc
    except history.HistoryRefused as problem:
        await db.rollback()
        return await _page(request, db, patron.id, shelf=shelf_id, error=refusal_message(problem), status=400)
    return redirect(request.app.route_reverse("history:index") + f"?shelf={shelf_id}")


@post("/history/shelves/{shelf_id:int}/delete", name="history:delete_shelf")
async def delete_shelf(
    request: Request,
    shelf_id: RecordId,
    patron: NamedDependency[SessionPatron],
    db: NamedDependency[AsyncSession],
) -> object:
    try:
        await history.delete_shelf(db, patron.id, shelf_id)
    except history.HistoryNotFound as exc:
        raise NotFoundException() from exc
    flash(request, gettext("The shelf was deleted; its titles are still in your history."), "ok")
    return redirect(request.app.route_reverse("history:index"))


@post("/history/entries/{entry_id:int}/shelf", name="history:move")
async def move(
    request: Request,
    entry_id: RecordId,
    patron: NamedDependency[SessionPatron],
    db: NamedDependency[AsyncSession],
) -> object:
    form = await request.form()
    target = _id(form.get("shelf_id"))
    try:
        await history.move(db, patron.id, entry_id, target or None)
    except history.HistoryNotFound as exc:
        raise NotFoundException() from exc
    flash(request, gettext("Moved."), "ok")
    back = _id(form.get("back"))
    suffix = f"?shelf={back}" if back is not None else ""
    return redirect(request.app.route_reverse("history:index") + suffix)


@post("/history/entries/{entry_id:int}/delete", name="history:remove")
async def remove(
    request: Request,
    entry_id: RecordId,
    patron: NamedDependency[SessionPatron],
    db: NamedDependency[AsyncSession],
) -> object:
    try:
        await history.remove(db, patron.id, entry_id)
    except history.HistoryNotFound as exc:
        raise NotFoundException() from exc
    return redirect(request.app.route_reverse("history:index"))


@get("/history/csv", name="history:csv")
async def download(
    request: Request, patron: NamedDependency[SessionPatron], db: NamedDependency[AsyncSession]
) -> Response[bytes]:
    return Response(
        history.to_csv(await history.entries(db, patron.id)),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="reading-history.csv"'},
    )

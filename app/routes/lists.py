"""My book lists with CSV download, and favourites."""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import quote

from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import QueryParameter
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.i18n import gettext
from app.models import Bib
from app.routes._deps import RecordId
from app.routes._render import flash, redirect, refusal_message, render, safe_next, wants_fragment
from app.services import lists
from app.services.accounts import SessionPatron

SLOT = re.compile(r"list-result(-\d{1,10})?")  # where htmx puts the answer (one per search result)


@get("/lists", name="lists:index")
async def index(
    request: Request, patron: NamedDependency[SessionPatron], db: NamedDependency[AsyncSession]
) -> object:
    return render(
        request, "lists/index.html", lists=await lists.summaries(db, patron.id), error=None, typed={}
    )


@post("/lists", name="lists:create")
async def create(
    request: Request, patron: NamedDependency[SessionPatron], db: NamedDependency[AsyncSession]
) -> object:
    form = await request.form()
    typed = {"name": str(form.get("name", ""))[:2000], "memo": str(form.get("memo", ""))[:5000]}
    try:
        list_id = await lists.create(db, patron.id, typed["name"], typed["memo"])
    except lists.ListRefused as problem:
        await db.rollback()
        return render(
            request,
            "lists/index.html",
            status_code=400,
            lists=await lists.summaries(db, patron.id),
            error=refusal_message(problem),
            typed=typed,
        )
    return redirect(request.app.route_reverse("lists:show", list_id=list_id))


@get("/lists/{list_id:int}", name="lists:show")
async def show(
    request: Request,
    list_id: RecordId,
    patron: NamedDependency[SessionPatron],
    db: NamedDependency[AsyncSession],
) -> object:
    try:
        book_list, rows = await lists.entries(db, patron.id, list_id)
    except lists.ListNotFound as exc:
        raise NotFoundException() from exc
    return render(request, "lists/show.html", block="entries", book_list=book_list, rows=rows, error=None)


@post("/lists/{list_id:int}", name="lists:rename")
async def rename(
    request: Request,
    list_id: RecordId,
    patron: NamedDependency[SessionPatron],
    db: NamedDependency[AsyncSession],
) -> object:
    form = await request.form()
    try:
        await lists.rename(
            db, patron.id, list_id, str(form.get("name", ""))[:2000], str(form.get("memo", ""))[:5000]
        )
    except lists.ListNotFound as exc:
        raise NotFoundException() from exc
    except lists.ListRefused as problem:
        await db.rollback()
        book_list, rows = await lists.entries(db, patron.id, list_id)
        return render(
            request,
            "lists/show.html",
            status_code=400,
            book_list=book_list,
            rows=rows,
            error=refusal_message(problem),
        )
    flash(request, gettext("The list was saved."), "ok")
    return redirect(request.app.route_reverse("lists:show", list_id=list_id))


@post("/lists/{list_id:int}/delete", name="lists:delete")
async def delete_list(
    request: Request,
    list_id: RecordId,
    patron: NamedDependency[SessionPatron],
    db: NamedDependency[AsyncSession],
) -> object:
    try:
        await lists.remove_list(db, patron.id, list_id)
    except lists.ListNotFound as exc:
        raise NotFoundException() from exc
    flash(request, gettext("The list was deleted."), "ok")
    return redirect(request.app.route_reverse("lists:index"))


@get("/lists/add", name="lists:add_form")
async def add_form(
    request: Request,
    bib_id: Annotated[int, QueryParameter(ge=1, le=2_147_483_647)],
    patron: NamedDependency[SessionPatron],
    db: NamedDependency[AsyncSession],
) -> object:
    """From a search result: pick a list (htmx loads this form in place; without JavaScript, a page)."""
    title = await db.scalar(select(Bib.title).where(Bib.id == bib_id))
    if title is None:
        raise NotFoundException()
    return render(
        request,
        "lists/add_form.html",
        block="add_form",
        bib_id=bib_id,
        title=title,
        my_lists=await lists.summaries(db, patron.id),
        next_url=safe_next(request.query_params.get("next"), "/lists"),
    )


@post("/lists/entries", name="lists:add_entry")
async def add_entry(
    request: Request, patron: NamedDependency[SessionPatron], db: NamedDependency[AsyncSession]
) -> object:
    """From the title page or search results: the list is chosen in the form."""
    form = await request.form()
    list_raw, bib_raw = str(form.get("list_id", "")), str(form.get("bib_id", ""))
    back = safe_next(str(form.get("next", "")), "/lists")
    if not (list_raw.isdigit() and bib_raw.isdigit() and len(list_raw) < 10 and len(bib_raw) < 10):
        raise NotFoundException()
    try:
        await lists.add_entry(db, patron.id, int(list_raw), int(bib_raw), str(form.get("memo", ""))[:5000])
        message, level = gettext("Added to the list."), "ok"
    except lists.ListNotFound as exc:
        raise NotFoundException() from exc
    except lists.ListRefused as problem:
        message, level = refusal_message(problem), "error"
    if wants_fragment(request):
        return render(
            request,
            "lists/added.html",
            block="added",
            message=message,
            level=level,
            slot=slot if SLOT.fullmatch(slot := str(form.get("slot", ""))) else "list-result",
            status_code=200 if level == "ok" else 400,
        )
    flash(request, message, level)
    return redirect(back)


@post("/lists/{list_id:int}/entries/{entry_id:int}/delete", name="lists:remove_entry")
async def remove_entry(
    request: Request,
    list_id: RecordId,
    entry_id: RecordId,
    patron: NamedDependency[SessionPatron],
    db: NamedDependency[AsyncSession],
) -> object:
    try:
        await lists.remove_entry(db, patron.id, list_id, entry_id)
    except lists.ListNotFound as exc:
        raise NotFoundException() from exc
    return redirect(request.app.route_reverse("lists:show", list_id=list_id))


@get("/lists/{list_id:int}/csv", name="lists:csv")
async def download(
    request: Request,
    list_id: RecordId,
    patron: NamedDependency[SessionPatron],
    db: NamedDependency[AsyncSession],
) -> Response[bytes]:
    try:
        book_list, rows = await lists.entries(db, patron.id, list_id)
    except lists.ListNotFound as exc:
        raise NotFoundException() from exc
    filename = quote(f"{book_list.name}.csv")
    return Response(
        lists.to_csv(book_list, rows),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="booklist-{list_id}.csv"; '
            f"filename*=UTF-8''{filename}"
        },
    )


@post("/favourites/{bib_id:int}", name="favourites:toggle")
async def toggle(
    request: Request,
    bib_id: RecordId,
    patron: NamedDependency[SessionPatron],
    db: NamedDependency[AsyncSession],
) -> object:
    try:
        now_favourite = await lists.toggle_favourite(db, patron.id, bib_id)
    except lists.ListNotFound as exc:
        raise NotFoundException() from exc
    if wants_fragment(request):
        return render(
            request, "lists/favourite.html", block="favourite", bib_id=bib_id, is_favourite=now_favourite
        )
    form = await request.form()
    return redirect(safe_next(str(form.get("next", "")), "/favourites"))


@get("/favourites", name="favourites:index")
async def favourites_page(
    request: Request, patron: NamedDependency[SessionPatron], db: NamedDependency[AsyncSession]
) -> object:
    return render(request, "lists/favourites.html", rows=await lists.favourites(db, patron.id))

"""Catalogue search (simple and advanced) and the title detail page."""

from __future__ import annotations

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from sqlalchemy.ext.asyncio import AsyncSession

from app.i18n import gettext
from app.routes._deps import RecordId
from app.routes._render import render, session_patron
from app.services import alerts, catalog, lists
from app.services.cart import ids_in


def _raw_query(request: Request) -> dict[str, str]:
    return {key: request.query_params.getall(key)[-1] for key in request.query_params}


@get("/search", name="search:results")
async def search_page(request: Request, db: NamedDependency[AsyncSession]) -> object:
    branches = await catalog.branches(db)
    raw = _raw_query(request)
    error = None
    try:
        params = catalog.parse_params(raw, [b.id for b in branches])
    except catalog.SearchError as problem:
        params, error = catalog.SearchParams(q=catalog.clean_text(raw.get("q"))), problem
    patron = session_patron(request)
    if error is None:
        results = await catalog.search(db, params, patron.id if patron is not None else None)
    else:
        results = catalog.SearchPage(params, [], 0, False)
    return render(
        request,
        "search/results.html",
        block="results",
        status_code=400 if error else 200,
        results=results,
        params=params,
        branches=branches,
        error=gettext(error.message) if error else None,
        error_field=error.field if error else None,
        material_labels=catalog.MATERIAL_LABELS,
        cart_ids=set(ids_in(request.session)),
        raw=raw,
        alert_search=alerts.search_query_string(params),
    )


@get("/bibs/{bib_id:int}", name="bibs:detail")
async def detail_page(request: Request, bib_id: RecordId, db: NamedDependency[AsyncSession]) -> object:
    try:
        detail = await catalog.get_detail(db, bib_id)
    except catalog.BibNotFound as exc:
        raise NotFoundException() from exc
    patron = session_patron(request)
    my_lists: list[lists.ListSummary] = []
    is_favourite = False
    if patron is not None:
        my_lists = await lists.summaries(db, patron.id)
        is_favourite = await lists.is_favourite(db, patron.id, bib_id)
    return render(
        request,
        "bibs/detail.html",
        detail=detail,
        material_labels=catalog.MATERIAL_LABELS,
        cart_ids=set(ids_in(request.session)),
        my_lists=my_lists,
        is_favourite=is_favourite,
        bib_id=bib_id,
    )

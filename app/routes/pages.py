"""Home, My Library dashboard, Holds and Search pages."""

from __future__ import annotations

from litestar import MediaType, Request, get
from litestar.di import NamedDependency
from litestar.params import FromQuery
from litestar.response import Redirect
from sqlalchemy.ext.asyncio import AsyncSession

from app import clock
from app.policy import Policy
from app.routes._deps import PageNumber
from app.routes._render import redirect, render, session_patron
from app.routes.loans import refusal_text
from app.services import catalog, holds, loans
from app.services.accounts import SessionPatron


@get("/", name="pages:home")
async def home(request: Request) -> object:
    if session_patron(request) is not None:
        return redirect(request.app.route_reverse("pages:mylibrary"))
    return render(request, "pages/home.html")


@get("/mylibrary", name="pages:mylibrary")
async def mylibrary(
    request: Request,
    patron: NamedDependency[SessionPatron],
    db: NamedDependency[AsyncSession],
    policy: NamedDependency[Policy],
) -> object:
    today = clock.today()
    loan_list = await loans.list_loans(db, patron.id, today=today, policy=policy)
    hold_list = await holds.list_holds(db, patron.id, today=today, policy=policy)
    return render(
        request,
        "pages/mylibrary.html",
        loans=loan_list,
        overdue=[loan for loan in loan_list if loan.overdue],
        ready=[h for h in hold_list if h.status == "ready"],
        active_holds=[h for h in hold_list if h.status != "cancelled"],
        refusal_text=lambda r: refusal_text(r, policy),
    )


@get("/holds", name="holds:list")
async def holds_page(
    request: Request,
    patron: NamedDependency[SessionPatron],
    db: NamedDependency[AsyncSession],
    policy: NamedDependency[Policy],
) -> object:
    hold_list = await holds.list_holds(db, patron.id, today=clock.today(), policy=policy)
    return render(
        request,
        "holds/list.html",
        block="holds",
        holds=hold_list,
        status_labels=holds.STATUS_LABELS,
        contact_labels=holds.CONTACT_LABELS,
    )


@get("/search", name="search:results")
async def search_page(
    request: Request, db: NamedDependency[AsyncSession], q: FromQuery[str] = "", page: PageNumber = 1
) -> object:
    results = await catalog.search(db, q, page=page)
    return render(request, "search/results.html", block="results", results=results)


@get("/favicon.ico", name="pages:favicon", include_in_schema=False)
async def favicon() -> Redirect:
    return Redirect(path="/static/favicon.svg", status_code=301)


@get(
    "/healthz", name="health", media_type=MediaType.TEXT, opt={"skip_session": True}, include_in_schema=False
)
async def health() -> str:
    """Liveness for load balancers, and the bare route the benchmarks compare pages with."""
    return "ok"

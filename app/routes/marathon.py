"""The reading marathon page: set a goal, see progress as a chart (SVG with a text equivalent)."""

from __future__ import annotations

from litestar import Request, get, post
from litestar.di import NamedDependency
from sqlalchemy.ext.asyncio import AsyncSession

from app import clock
from app.routes._render import redirect, refusal_message, render
from app.services import marathon
from app.services.accounts import SessionPatron


def _page(
    request: Request,
    rows: list[marathon.Progress],
    error: str | None,
    typed: dict[str, str],
    status: int = 200,
) -> object:
    today = clock.today()
    return render(
        request,
        "marathon/index.html",
        status_code=status,
        marathons=rows,
        error=error,
        typed=typed,
        default_start=today.isoformat(),
        default_end=today.replace(month=12, day=31).isoformat(),
    )


@get("/marathon", name="marathon:index")
async def index(
    request: Request, patron: NamedDependency[SessionPatron], db: NamedDependency[AsyncSession]
) -> object:
    return _page(request, await marathon.progress(db, patron.id), None, {})


@post("/marathon", name="marathon:start")
async def start(
    request: Request, patron: NamedDependency[SessionPatron], db: NamedDependency[AsyncSession]
) -> object:
    form = await request.form()
    typed = {k: str(form.get(k, ""))[:20] for k in ("goal", "starts_on", "ends_on")}
    try:
        await marathon.start(
            db, patron.id, goal=typed["goal"], starts_on=typed["starts_on"], ends_on=typed["ends_on"]
        )
    except marathon.MarathonRefused as problem:
        return _page(request, await marathon.progress(db, patron.id), refusal_message(problem), typed, 400)
    return redirect(request.app.route_reverse("marathon:index"))

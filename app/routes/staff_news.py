"""Staff write library news (mailed to subscribers through the worker) and calendar events."""

from __future__ import annotations

from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app import clock
from app.i18n import gettext
from app.models import Branch
from app.routes._deps import RecordId
from app.routes._render import flash, redirect, refusal_message, render
from app.routes.staff import StaffSession
from app.services import circulation, news
from app.tasks.queue import kick_mailer


async def _page(
    request: Request,
    db: AsyncSession,
    staff: StaffSession,
    *,
    error: str | None = None,
    typed: dict[str, str] | None = None,
    status: int = 200,
) -> object:
    today = clock.today()
    return render(
        request,
        "staff/news.html",
        status_code=status,
        staff=staff,
        news_items=await news.recent(db),
        events=await news.upcoming_events(db, today),
        branches=(
            await db.execute(select(Branch.id, Branch.name_ja, Branch.name_en).order_by(Branch.id))
        ).all(),
        error=error,
        typed=typed or {},
    )


@get("/staff/news", name="staff:news")
async def news_page(
    request: Request, staff: NamedDependency[StaffSession], db: NamedDependency[AsyncSession]
) -> object:
    return await _page(request, db, staff)


@post("/staff/news", name="staff:news_publish")
async def publish(
    request: Request, staff: NamedDependency[StaffSession], db: NamedDependency[AsyncSession]
) -> object:
    form = await request.form()
    typed = {
        k: str(form.get(k, ""))[:5000] for k in ("title_ja", "title_en", "body_ja", "body_en", "shown_until")
    }
    mail = form.get("mail") == "yes"
    try:
        news_id = await news.publish(
            db,
            staff_id=staff.id,
            urgent=form.get("urgent") == "yes",
            mail=mail,
            today=clock.today(),
            **typed,
        )
    except news.NewsRefused as problem:
        await db.rollback()
        return await _page(request, db, staff, error=refusal_message(problem), typed=typed, status=400)
    await circulation.audit(db, staff.id, "news_publish", str(news_id), typed["title_ja"][:100])
    await db.commit()
    if mail:
        await kick_mailer(request.app.state.arq, request.app.state.settings.redis_namespace)
    flash(
        request,
        gettext("Published. The mail goes out to subscribers through the worker.")
        if mail
        else gettext("Published."),
        "ok",
    )
    return redirect(request.app.route_reverse("staff:news"))


@post("/staff/news/{news_id:int}/delete", name="staff:news_withdraw")
async def withdraw(
    request: Request,
    news_id: RecordId,
    staff: NamedDependency[StaffSession],
    db: NamedDependency[AsyncSession],
) -> object:
    try:
        await news.withdraw(db, news_id)
    except news.NewsNotFound as exc:
        raise NotFoundException() from exc
    await circulation.audit(db, staff.id, "news_withdraw", str(news_id))
    await db.commit()
    flash(request, gettext("Withdrawn."), "ok")
    return redirect(request.app.route_reverse("staff:news"))


@post("/staff/events", name="staff:event_add")
async def add_event(
    request: Request, staff: NamedDependency[StaffSession], db: NamedDependency[AsyncSession]
) -> object:
    form = await request.form()
    typed = {k: str(form.get(k, ""))[:500] for k in ("branch", "day", "event_ja", "event_en")}
    try:
        event_id = await news.add_event(
            db,
            staff_id=staff.id,
            branch=typed["branch"].strip(),
            day=typed["day"],
            title_ja=typed["event_ja"],
            title_en=typed["event_en"],
        )
    except news.NewsRefused as problem:
        await db.rollback()
        return await _page(request, db, staff, error=refusal_message(problem), typed=typed, status=400)
    await circulation.audit(db, staff.id, "event_add", str(event_id), typed["event_ja"][:100])
    await db.commit()
    flash(request, gettext("The event is on the calendar."), "ok")
    return redirect(request.app.route_reverse("staff:news"))


@post("/staff/events/{event_id:int}/delete", name="staff:event_delete")
async def delete_event(
    request: Request,
    event_id: RecordId,
    staff: NamedDependency[StaffSession],
    db: NamedDependency[AsyncSession],
) -> object:
    try:
        await news.remove_event(db, event_id)
    except news.NewsNotFound as exc:
        raise NotFoundException() from exc
    await circulation.audit(db, staff.id, "event_delete", str(event_id))
    await db.commit()
    return redirect(request.app.route_reverse("staff:news"))

"""Home and the My Library dashboard."""

from __future__ import annotations

import datetime as dt
import unicodedata
from email import message_from_bytes
from email import policy as email_policy
from pathlib import Path
from typing import Annotated

from litestar import MediaType, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import PathParameter
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from app import clock
from app.i18n import gettext
from app.policy import Policy
from app.routes._render import flash, redirect, render, session_patron
from app.services import card, dashboard, feed, news
from app.services.accounts import SessionPatron


@get("/", name="pages:home")
async def home(request: Request) -> object:
    if session_patron(request) is not None:
        return redirect(request.app.route_reverse("pages:mylibrary"))
    return render(request, "pages/home.html")


def _month(raw: str | None, today: dt.date) -> dt.date:
    """`?month=YYYY-MM` for the calendar, within two years of today; this month otherwise."""
    text = unicodedata.normalize("NFKC", raw or "").strip()[:7]
    try:
        first = dt.date.fromisoformat(text + "-01")
    except ValueError:
        return today.replace(day=1)
    return first if abs((first - today).days) <= 2 * 366 else today.replace(day=1)


def _shift(first: dt.date, months: int) -> dt.date:
    index = first.year * 12 + first.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


@get("/mylibrary", name="pages:mylibrary")
async def mylibrary(
    request: Request,
    patron: NamedDependency[SessionPatron],
    db: NamedDependency[AsyncSession],
    policy: NamedDependency[Policy],
) -> object:
    """The dashboard (Fukushima's マイライブラリー): the urgent things first, then the rest at a glance."""
    today = clock.today()
    # Lines, not the full views: the dashboard shows titles and dates, not renewal rules or queues.
    found = await dashboard.overview(db, patron.id, today=today, policy=policy)
    return render(
        request,
        "pages/mylibrary.html",
        loans=found.loans,
        overdue=found.overdue,
        due_soon=found.due_soon,
        ready=found.ready,
        active_holds=found.active_holds,
        cancelled=found.cancelled,
        book_lists=found.book_lists,
        alert_list=found.alert_list,
        marathon=found.marathon,
        news_items=found.news_items,
        month_param=_month(month, today).isoformat()[:7]
        if (month := request.query_params.get("month"))
        else "",
    )


@get("/calendar", name="calendar:month")
async def calendar_month(request: Request, db: NamedDependency[AsyncSession]) -> object:
    """The library calendar: a month of closed days and events. Public; the dashboard loads it lazily
    (htmx), so the dashboard itself stays cheap, and without JavaScript it is one link away."""
    today = clock.today()
    first = _month(request.query_params.get("month"), today)
    return render(
        request,
        "pages/calendar.html",
        block="calendar",
        month=await news.month(db, first, today),
        prev_month=_shift(first, -1).isoformat()[:7],
        next_month=_shift(first, 1).isoformat()[:7],
        headers={"Cache-Control": "private, max-age=300"},
    )


@get("/calendar/{token:str}", name="feed:ics", opt={"skip_session": True}, include_in_schema=False)
async def calendar_feed(
    request: Request, token: Annotated[str, PathParameter(max_length=100)], db: NamedDependency[AsyncSession]
) -> Response[bytes]:
    """Due dates and shelf deadlines as iCalendar, for the patron's own calendar app (secret address)."""
    found = await feed.patron_for(db, token.removesuffix(".ics")[:80]) if token.endswith(".ics") else None
    if found is None:
        raise NotFoundException()
    body = await feed.build(db, found[0], found[1], request.url.hostname or "mylibrary")
    return Response(
        body,
        media_type="text/calendar; charset=utf-8",
        headers={
            "Cache-Control": "private, max-age=900",
            "Content-Disposition": 'inline; filename="library.ics"',
        },
    )


@get("/account/calendar", name="account:calendar")
async def calendar_settings(
    request: Request, patron: NamedDependency[SessionPatron], db: NamedDependency[AsyncSession]
) -> object:
    token = await feed.patron_token(db, patron.id)
    url = None
    if token:
        url = request.app.state.settings.base_url.rstrip("/") + f"/calendar/{token}.ics"
    return render(request, "account/calendar.html", feed_url=url)


@post("/account/calendar", name="account:calendar_reset")
async def calendar_reset(
    request: Request, patron: NamedDependency[SessionPatron], db: NamedDependency[AsyncSession]
) -> object:
    """Make (or replace) the secret address; the old one stops working at once."""
    had = await feed.patron_token(db, patron.id)
    await feed.reset(db, patron.id)
    flash(
        request,
        gettext("A new address was made. The old one no longer works.")
        if had
        else gettext("Your address is ready."),
        "ok",
    )
    return redirect(request.app.route_reverse("account:calendar"))


@get("/favicon.ico", name="pages:favicon", include_in_schema=False)
async def favicon() -> Redirect:
    return Redirect(path="/static/favicon.svg", status_code=301)


@get(
    "/healthz", name="health", media_type=MediaType.TEXT, opt={"skip_session": True}, include_in_schema=False
)
async def health() -> str:
    """Liveness for load balancers, and the bare route the benchmarks compare pages with."""
    return "ok"


_YARDSTICK = {
    "lang": "en",
    "title": "Yardstick",
    "heading": "A plain template",
    "rows": [{"n": n, "title": f"Title number {n}", "due": f"2026-12-{n:02d}"} for n in range(1, 11)],
    "words": ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"],
    "footer": "City Library",
}


@get(
    "/healthz/page",
    name="health:page",
    media_type=MediaType.HTML,
    opt={"skip_session": True},
    include_in_schema=False,
)
async def health_page() -> Template:
    """A bare route rendering a ~2 KB template (no session, no database): the benchmarks' yardstick."""
    return Template(template_name="pages/healthz.html", context=_YARDSTICK)


@get("/dev/mail", name="dev:mail")
async def dev_mail(request: Request) -> object:
    """The development mailbox (`python -m app mailbox`), newest first: only with APP_ENV=development."""
    settings = request.app.state.settings
    if settings.app_env != "development":
        raise NotFoundException()
    mails = []
    for path in sorted((settings.var_dir / "mailbox").glob("*.eml"), reverse=True)[:50]:
        message = message_from_bytes(path.read_bytes(), policy=email_policy.default)
        body = message.get_body(("plain",))
        mails.append(
            {
                "subject": message["Subject"],
                "to": message["To"],
                "date": message["Date"],
                "text": body.get_content() if body else "",
            }
        )
    return render(request, "pages/dev_mail.html", mails=mails)


@get("/card", name="card:digital")
async def digital_card(
    request: Request, patron: NamedDependency[SessionPatron], policy: NamedDependency[Policy]
) -> object:
    """The library card on the phone: the number as a barcode the counter's scanner reads."""
    svg = card.barcode_svg(patron.card_number, policy.card_barcode)
    return render(request, "pages/card.html", barcode_svg=svg)


@get(
    "/card-sw.js",
    name="card:service_worker",
    media_type="text/javascript",
    opt={"skip_session": True},
    include_in_schema=False,
)
async def card_service_worker(request: Request) -> Response[bytes]:
    """Served from the root so its scope covers /card; the file lives with the other static files."""
    body = (Path(__file__).parent.parent / "static" / "card-sw.js").read_bytes()
    return Response(body, media_type="text/javascript", headers={"Cache-Control": "no-cache"})

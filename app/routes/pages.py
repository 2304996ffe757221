"""Home and the My Library dashboard."""

from __future__ import annotations

from email import message_from_bytes
from email import policy as email_policy
from pathlib import Path

from litestar import MediaType, Request, Response, get
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.response import Redirect
from sqlalchemy.ext.asyncio import AsyncSession

from app import clock
from app.policy import Policy
from app.routes._render import redirect, render, session_patron
from app.routes.loans import refusal_text
from app.services import card, holds, loans
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


@get("/favicon.ico", name="pages:favicon", include_in_schema=False)
async def favicon() -> Redirect:
    return Redirect(path="/static/favicon.svg", status_code=301)


@get(
    "/healthz", name="health", media_type=MediaType.TEXT, opt={"skip_session": True}, include_in_schema=False
)
async def health() -> str:
    """Liveness for load balancers, and the bare route the benchmarks compare pages with."""
    return "ok"


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

"""The Loans page and renewals (inline with htmx, or a plain form and a 303)."""

from __future__ import annotations

from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from sqlalchemy.ext.asyncio import AsyncSession

from app import clock
from app.i18n import format_date, gettext, ngettext
from app.policy import Policy
from app.routes._deps import RecordId
from app.routes._render import flash, redirect, render, wants_fragment
from app.services import loans
from app.services.accounts import SessionPatron


def refusal_text(reason: str, policy: NamedDependency[Policy]) -> str:
    return gettext(loans.REFUSAL_MESSAGES[reason], days=policy.renewal_window_days)


def _flash_result(request: Request, result: loans.RenewResult, policy: Policy) -> None:
    """The outcome of one renewal, for the page after the redirect (no JavaScript)."""
    if result.renewed:
        text = gettext(
            "Renewed “%(title)s”. New due date: %(date)s.",
            title=result.loan.title,
            date=format_date(result.loan.due_on),
        )
        flash(request, text, "ok")
    else:
        text = gettext(
            "“%(title)s” was not renewed: %(reason)s",
            title=result.loan.title,
            reason=refusal_text(result.reason or "", policy),
        )
        flash(request, text, "error")


def _list_context(items: list[loans.LoanView]) -> dict[str, object]:
    return {
        "loans": items,
        "overdue_count": sum(loan.overdue for loan in items),
        "any_renewable": any(loan.renewable for loan in items),
    }


@get("/loans", name="loans:list")
async def loans_page(
    request: Request,
    patron: NamedDependency[SessionPatron],
    db: NamedDependency[AsyncSession],
    policy: NamedDependency[Policy],
) -> object:
    items = await loans.list_loans(db, patron.id, today=clock.today(), policy=policy)
    return render(
        request,
        "loans/list.html",
        block="loans",
        **_list_context(items),
        summary=None,
        refusal_text=lambda r: refusal_text(r, policy),
    )


@post("/loans/{loan_id:int}/renew", name="loans:renew")
async def renew(
    request: Request,
    loan_id: RecordId,
    patron: NamedDependency[SessionPatron],
    db: NamedDependency[AsyncSession],
    policy: NamedDependency[Policy],
) -> object:
    try:
        result = await loans.renew(db, patron.id, loan_id, today=clock.today(), policy=policy)
    except loans.LoanNotFound as exc:
        raise NotFoundException() from exc
    if wants_fragment(request):
        return render(
            request,
            "loans/_row.html",
            loan=result.loan,
            refusal_text=lambda r: refusal_text(r, policy),
        )
    _flash_result(request, result, policy)
    return redirect(request.app.route_reverse("loans:list"))


@post("/loans/renew-all", name="loans:renew_all")
async def renew_all(
    request: Request,
    patron: NamedDependency[SessionPatron],
    db: NamedDependency[AsyncSession],
    policy: NamedDependency[Policy],
) -> object:
    results = await loans.renew_all(db, patron.id, today=clock.today(), policy=policy)
    renewed = sum(r.renewed for r in results)
    summary = ngettext(
        "Renewed %(renewed)s of %(num)s loan.",
        "Renewed %(renewed)s of %(num)s loans.",
        len(results),
        renewed=renewed,
    )
    if wants_fragment(request):
        return render(
            request,
            "loans/list.html",
            block="loans",
            **_list_context([r.loan for r in results]),
            summary=summary,
            refusal_text=lambda r: refusal_text(r, policy),
        )
    flash(request, summary, "ok" if renewed else "info")
    for r in results:
        _flash_result(request, r, policy)
    return redirect(request.app.route_reverse("loans:list"))

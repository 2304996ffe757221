"""The My Library dashboard (Fukushima's マイライブラリー): everything it shows, read at once.

The urgent things first (overdue loans, holds ready for pickup), then the rest at a glance. Each
part is its own service's read (loans, holds, marathons, lists, alerts, news), run together by
`app.reads.together`: on PostgreSQL one statement (one round trip) instead of six; on SQLite one
after another, which costs less there.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.policy import Policy
from app.reads import together
from app.services import alerts, holds, lists, loans, marathon, news
from app.services.alerts import AlertView
from app.services.holds import HoldLine
from app.services.lists import ListSummary
from app.services.loans import LoanLine
from app.services.marathon import Progress

DUE_SOON_DAYS = 3


@dataclass(slots=True)  # made per request: not frozen, which costs a setattr call per field
class Overview:
    loans: list[LoanLine]  # overdue first, then by due date
    overdue: list[LoanLine]
    due_soon: list[LoanLine]  # not overdue, due within DUE_SOON_DAYS
    ready: list[HoldLine]
    active_holds: list[HoldLine]
    cancelled: list[HoldLine]
    book_lists: list[ListSummary]
    alert_list: list[AlertView]
    marathon: Progress | None  # the newest
    news_items: list[Any]


async def overview(session: AsyncSession, patron_id: int, *, today: dt.date, policy: Policy) -> Overview:
    loan_list, hold_list, marathons, book_lists, alert_list, news_items = await together(
        session,
        loans.lines_read(patron_id, today=today),
        holds.lines_read(patron_id, today=today, policy=policy),
        marathon.progress_read(patron_id),
        lists.summaries_read(patron_id),
        alerts.alerts_read(patron_id),
        news.current_read(today),
    )
    overdue = [loan for loan in loan_list if loan.overdue]
    return Overview(
        loans=overdue + [loan for loan in loan_list if not loan.overdue],
        overdue=overdue,
        due_soon=[
            loan for loan in loan_list if not loan.overdue and (loan.due_on - today).days <= DUE_SOON_DAYS
        ],
        ready=[h for h in hold_list if h.status == "ready"],
        active_holds=[h for h in hold_list if h.status != "cancelled"],
        cancelled=[h for h in hold_list if h.status == "cancelled"],
        book_lists=book_lists,
        alert_list=alert_list,
        marathon=marathons[0] if marathons else None,
        news_items=news_items,
    )

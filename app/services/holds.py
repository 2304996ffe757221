"""Holds (予約) as the patron sees them; placing and allocation come with the catalogue and counter."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.i18n import N_
from app.models import ACTIVE_HOLD_STATUSES, Bib, Branch, Hold
from app.policy import Policy

STATUS_LABELS = {
    "waiting": N_("Waiting"),
    "in_transit": N_("In transit / being prepared"),
    "ready": N_("Ready for pickup"),
    "collected": N_("Collected"),
    "cancelled": N_("Cancelled"),
}
CONTACT_LABELS = {"email": N_("Email"), "phone": N_("Phone"), "none": N_("No contact")}


@dataclass(frozen=True)
class HoldView:
    id: int
    bib_id: int
    title: str
    status: str
    placed_at: dt.datetime
    pickup_ja: str
    pickup_en: str
    contact: str
    queue_position: int | None
    shelf_until: dt.date | None
    suspended_until: dt.date | None
    cancelled_at: dt.datetime | None


async def list_holds(
    session: AsyncSession, patron_id: int, *, today: dt.date, policy: Policy
) -> list[HoldView]:
    """Active holds and those cancelled within the policy's days, with an estimated queue position."""
    ahead = aliased(Hold)
    position = (
        select(func.count(ahead.id) + 1)
        .where(ahead.bib_id == Hold.bib_id, ahead.status == "waiting", ahead.placed_at < Hold.placed_at)
        .correlate(Hold)
        .scalar_subquery()
    )
    since = dt.datetime.combine(today - dt.timedelta(days=policy.cancelled_visible_days), dt.time())
    rows = (
        await session.execute(
            select(Hold, Bib.title, Branch.name_ja, Branch.name_en, position.label("position"))
            .join(Bib, Bib.id == Hold.bib_id)
            .join(Branch, Branch.id == Hold.pickup_branch_id)
            .where(
                Hold.patron_id == patron_id,
                or_(
                    Hold.status.in_(ACTIVE_HOLD_STATUSES),
                    and_(Hold.status == "cancelled", Hold.cancelled_at >= since),
                ),
            )
            .order_by(Hold.status == "cancelled", Hold.placed_at)
        )
    ).all()
    return [
        HoldView(
            id=h.id,
            bib_id=h.bib_id,
            title=title,
            status=h.status,
            placed_at=h.placed_at,
            pickup_ja=ja,
            pickup_en=en,
            contact=h.contact,
            queue_position=pos if h.status == "waiting" else None,
            shelf_until=h.shelf_until,
            suspended_until=h.suspended_until,
            cancelled_at=h.cancelled_at,
        )
        for h, title, ja, en, pos in rows
    ]

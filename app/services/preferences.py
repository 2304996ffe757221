"""Notice settings (which mails the patron wants) and the defaults that pre-fill the holds form."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.i18n import N_
from app.models import Branch, Patron
from app.policy import Policy

NOTICE_LABELS = {
    "pickup_ready": N_("Your hold is ready for pickup"),
    "due_reminder": N_("Items due soon (a reminder before the due date)"),
    "overdue": N_("Items overdue"),
    "card_expiry": N_("Your library card expires soon"),
    "new_arrivals": N_("New arrivals matching your saved searches"),
    "library_news": N_("Library news and events"),
}
COLUMNS = {
    "pickup_ready": "notify_pickup",
    "due_reminder": "notify_due",
    "overdue": "notify_overdue",
    "card_expiry": "notify_expiry",
    "new_arrivals": "notify_arrivals",
    "library_news": "notify_news",
}


class PreferenceError(ValueError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


PREFERENCE_MESSAGES = {
    "pickup": N_("Please choose a pickup library from the list."),
    "contact": N_("Please choose a contact method from the list."),
}


@dataclass(frozen=True)
class Preferences:
    notices: dict[str, bool]
    optional: tuple[str, ...]
    home_branch_id: int | None
    default_contact: str | None


async def get(session: AsyncSession, patron_id: int, policy: Policy) -> Preferences:
    patron = await session.get_one(Patron, patron_id)
    return Preferences(
        notices={kind: bool(getattr(patron, column)) for kind, column in COLUMNS.items()},
        optional=policy.optional_notices,
        home_branch_id=patron.home_branch_id,
        default_contact=patron.default_contact,
    )


async def update(
    session: AsyncSession, patron_id: int, policy: Policy, *, wanted: set[str], pickup: str, contact: str
) -> None:
    """Save the choices; notices the policy does not let patrons choose are left as they are."""
    branch_ids = set((await session.scalars(select(Branch.id).where(Branch.is_pickup_point))).all())
    if not pickup.isdigit() or int(pickup) not in branch_ids:
        raise PreferenceError("pickup")
    if contact not in policy.contact_methods:
        raise PreferenceError("contact")
    patron = await session.get_one(Patron, patron_id)
    for kind in policy.optional_notices:
        setattr(patron, COLUMNS[kind], kind in wanted)
    patron.home_branch_id, patron.default_contact = int(pickup), contact
    await session.commit()

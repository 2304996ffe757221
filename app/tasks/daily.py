"""The day's work: pickup mails, expiring holds, due-date, overdue and card-expiry notices, the digest.

Run by arq's cron each morning and by `python -m app jobs run --date YYYY-MM-DD` for any day. Every
step is safe to run twice for one day: notices are keyed by their event, holds move on by
compare-and-set.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app import clock
from app.models import Bib, Branch, Hold, Item, Loan, Patron
from app.policy import Policy, get_policy
from app.services import alerts, circulation, notices, selfreg
from app.settings import get_settings

CARD_EXPIRY_NOTICE_DAYS = 30  # Yokohama: card-expiry notice a month before


async def run_day(session: AsyncSession, day: dt.date, policy: Policy) -> dict[str, int]:
    counts = {
        "documents_deleted": 0,
        "pickup_ready": 0,
        "expired_holds": 0,
        "due_reminder": 0,
        "overdue": 0,
        "card_expiry": 0,
        "new_arrivals": 0,
    }
    # Pickup mails for holds that became ready the day before (normally queued at allocation already).
    ready = (
        await session.execute(
            select(Hold, Bib.title, Branch.name_ja, Branch.name_en)
            .join(Bib, Bib.id == Hold.bib_id)
            .join(Branch, Branch.id == Hold.pickup_branch_id)
            .where(
                Hold.status == "ready", Hold.contact == "email", Hold.ready_on == day - dt.timedelta(days=1)
            )
        )
    ).all()
    for done, (hold, title, ja, en) in enumerate(ready, 1):
        counts["pickup_ready"] += await notices.queue(
            session,
            type="pickup_ready",
            patron_id=hold.patron_id,
            hold_id=hold.id,
            dedup_key=f"pickup_ready:hold:{hold.id}",
            now=dt.datetime.combine(day, dt.time(8)),
            payload={
                "title": title,
                "branch_ja": ja,
                "branch_en": en,
                "shelf_until": hold.shelf_until.isoformat() if hold.shelf_until else "",
            },
        )
        if done % 500 == 0:
            await session.commit()  # short transactions: the counter must not wait for the write lock
    await session.commit()
    counts["expired_holds"] = await circulation.expire_uncollected(session, today=day, policy=policy)
    counts["due_reminder"] = await _loan_notices(
        session,
        "due_reminder",
        Loan.due_on == day + dt.timedelta(days=policy.due_reminder_days),
        Patron.notify_due,
        day,
    )
    # Overdue: the day after the due date, then once a week.
    overdue_rows = (
        (
            await session.execute(
                select(Loan.due_on).where(Loan.returned_on.is_(None), Loan.due_on < day).distinct()
            )
        )
        .scalars()
        .all()
    )
    notify_dates = [d for d in overdue_rows if (day - d).days % 7 == 1]
    if notify_dates:
        counts["overdue"] = await _loan_notices(
            session, "overdue", Loan.due_on.in_(notify_dates), Patron.notify_overdue, day
        )
    expiring = (
        await session.execute(
            select(Patron.id, Patron.card_expires_on).where(
                Patron.card_expires_on == day + dt.timedelta(days=CARD_EXPIRY_NOTICE_DAYS),
                Patron.notify_expiry,
            )
        )
    ).all()
    for patron_id, expires in expiring:
        counts["card_expiry"] += await notices.queue(
            session,
            type="card_expiry",
            patron_id=patron_id,
            dedup_key=f"card_expiry:patron:{patron_id}:{expires}",
            payload={"expires_on": expires.isoformat()},
            now=dt.datetime.combine(day, dt.time(8)),
        )
    await session.commit()
    if alerts.is_digest_day(day):  # Fukushima: 第2・第4火曜日
        settings = get_settings()
        digest = await alerts.run_digest(session, day, secret=settings.secret_key, base_url=settings.base_url)
        counts["new_arrivals"] = digest["new_arrivals"]
    counts["documents_deleted"] = await selfreg.purge_documents(
        session,
        policy=policy,
        upload_dir=get_settings().var_dir / "uploads",
        now=dt.datetime.combine(day, dt.time()),
    )
    return counts


async def _loan_notices(session: AsyncSession, kind: str, condition: Any, opted_in: Any, day: dt.date) -> int:
    """One notice per patron and due date, listing the titles."""
    rows = (
        await session.execute(
            select(Loan.patron_id, Loan.due_on, Bib.title)
            .join(Item, Item.id == Loan.item_id)
            .join(Bib, Bib.id == Item.bib_id)
            .join(Patron, Patron.id == Loan.patron_id)
            .where(and_(Loan.returned_on.is_(None), condition, opted_in))
            .order_by(Loan.patron_id, Loan.due_on, Bib.title)
        )
    ).all()
    grouped: dict[tuple[int, dt.date], list[str]] = {}
    for patron_id, due_on, title in rows:
        grouped.setdefault((patron_id, due_on), []).append(title)
    added = 0
    for (patron_id, due_on), titles in grouped.items():
        added += await notices.queue(
            session,
            type=kind,
            patron_id=patron_id,
            dedup_key=f"{kind}:patron:{patron_id}:{due_on}:{day}"
            if kind == "overdue"
            else f"{kind}:patron:{patron_id}:{due_on}",
            payload={"due_on": due_on.isoformat(), "titles": titles},
            now=dt.datetime.combine(day, dt.time(8)),
        )
    return added


async def daily_jobs(ctx: dict[str, Any]) -> dict[str, int]:
    """arq cron job, each morning in the library's time zone."""
    settings = ctx["settings"]
    async with ctx["sessionmaker"]() as session:
        return await run_day(session, clock.today(), get_policy(settings.library_policy))

"""Notices: decided by the services, in the same transaction as the change they report; sent by the worker.

Each notice has a unique dedup key naming its event (`pickup_ready:hold:42`), so deciding twice —
a retried job, a double click, a second run of a day's jobs — adds nothing. The worker claims a
batch, sends, and marks each one sent; a worker killed mid-batch leaves its claims to expire and
another run picks them up (see app/tasks/mailer.py).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import dialect_insert
from app.models import Bib, Email, Hold, Notice, Patron, Registration

MAX_ATTEMPTS = 5
CLAIM_SECONDS = 300
CLAIM_MARGIN_SECONDS = 2


async def queue(
    session: AsyncSession,
    *,
    type: str,
    patron_id: int | None,
    dedup_key: str,
    payload: dict[str, object] | None = None,
    hold_id: int | None = None,
    loan_id: int | None = None,
    registration_id: int | None = None,
    now: dt.datetime | None = None,
) -> bool:
    """Add a pending notice unless one with this dedup key exists; True when added. Caller commits."""
    values = dict(
        type=type,
        patron_id=patron_id,
        dedup_key=dedup_key,
        hold_id=hold_id,
        loan_id=loan_id,
        registration_id=registration_id,
        payload=json.dumps(payload or {}, ensure_ascii=False, default=str),
        status="pending",
        next_attempt_at=(now or dt.datetime.now()).replace(tzinfo=None),
    )
    insert = dialect_insert(session)
    result = await session.execute(
        insert(Notice).values(**values).on_conflict_do_nothing(index_elements=["dedup_key"])
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def hold_accepted(session: AsyncSession, hold_ids: Sequence[int]) -> None:
    """A "hold accepted" mail (Koga: 予約受付メール) for each email-contact hold, sent at once."""
    if not hold_ids:
        return
    rows = (
        await session.execute(
            select(Hold.id, Hold.patron_id, Bib.title)
            .join(Bib, Bib.id == Hold.bib_id)
            .where(Hold.id.in_(hold_ids), Hold.contact == "email")
        )
    ).all()
    for hold_id, patron_id, title in rows:
        await queue(
            session,
            type="hold_accepted",
            patron_id=patron_id,
            hold_id=hold_id,
            dedup_key=f"hold_accepted:hold:{hold_id}",
            payload={"title": title},
        )


@dataclass(frozen=True)
class Outgoing:
    """Everything the mailer needs for one notice."""

    id: int
    type: str
    lang: str
    name: str
    recipients: tuple[str, ...]
    payload: dict[str, object]
    attempts: int
    created_at: dt.datetime | None = None  # with the id, makes the mail's Message-ID unique for good


async def claim_batch(
    session: AsyncSession,
    *,
    now: dt.datetime,
    worker_id: str,
    live_workers: Sequence[str] | None = None,
    limit: int = 50,
) -> list[Outgoing]:
    """Claim up to `limit` due notices for `worker_id`.

    A claim lasts CLAIM_SECONDS; when the caller knows which workers are alive (`live_workers`), a
    claim held by a worker that is not — killed mid-batch — is taken over at once.
    """
    stamp = now.replace(tzinfo=None)
    unclaimed = [Notice.claimed_by.is_(None), Notice.claimed_until < stamp]
    if live_workers is not None:
        # A claim of a worker that is no longer announced is taken over at once — but only a claim
        # made before the caller read the list of live workers (with a margin for clocks): a worker
        # that announced itself just after that read may already hold fresh claims, and taking
        # those would send its mails twice (seen with two workers starting together).
        taken_before = stamp + dt.timedelta(seconds=CLAIM_SECONDS - CLAIM_MARGIN_SECONDS)
        unclaimed.append(
            and_(Notice.claimed_by.not_in(list(live_workers) or [""]), Notice.claimed_until < taken_before)
        )
    due = and_(
        Notice.status == "pending",
        or_(Notice.next_attempt_at.is_(None), Notice.next_attempt_at <= stamp),
        or_(*unclaimed),
    )
    ids = (await session.scalars(select(Notice.id).where(due).order_by(Notice.id).limit(limit))).all()
    if not ids:
        await session.commit()
        return []
    until = stamp + dt.timedelta(seconds=CLAIM_SECONDS)
    # Compare-and-set: only the rows still unclaimed become ours (another worker may race us).
    await session.execute(
        update(Notice)
        .where(Notice.id.in_(ids), due)
        .values(claimed_by=worker_id, claimed_until=until, attempts=Notice.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    claimed = (
        await session.execute(
            select(
                Notice,
                Patron.lang,
                Patron.name,
                Patron.name_en,
                Hold.email_id,
                Registration.lang,
                Registration.name,
                Registration.email,
            )
            .outerjoin(Patron, Patron.id == Notice.patron_id)
            .outerjoin(Hold, Hold.id == Notice.hold_id)
            .outerjoin(Registration, Registration.id == Notice.registration_id)
            .where(Notice.id.in_(ids), Notice.claimed_by == worker_id, Notice.claimed_until == until)
            .order_by(Notice.id)
        )
    ).all()
    await session.commit()
    patron_ids = {n.patron_id for n, *_ in claimed}
    emails: dict[int, list[tuple[int, str]]] = {}
    for confirmed_id, owner_id, address in await session.execute(
        select(Email.id, Email.patron_id, Email.address)
        .where(Email.patron_id.in_(patron_ids), Email.confirmed_at.is_not(None))
        .order_by(Email.id)
    ):
        emails.setdefault(owner_id, []).append((confirmed_id, address))
    pending_addresses = {
        r.id: r.address
        for r in await session.execute(
            select(Email.id, Email.address).where(
                Email.id.in_(
                    [
                        json.loads(n.payload or "{}").get("email_id", 0)
                        for n, *_ in claimed
                        if n.type == "email_confirmation"
                    ]
                ),
                Email.confirmed_at.is_(None),
            )
        )
    }
    out = []
    for notice, lang, name, name_en, email_id, reg_lang, reg_name, reg_email in claimed:
        confirmed = emails.get(notice.patron_id, []) if notice.patron_id else []
        if notice.patron_id is None:
            # An applicant (self-registration) has no patron record yet: the address they gave.
            lang, name, name_en = reg_lang or "ja", reg_name or "", ""
            chosen = [reg_email] if reg_email else []
        elif notice.type == "email_confirmation":
            # A confirmation link goes only to the address being confirmed.
            target = pending_addresses.get(json.loads(notice.payload or "{}").get("email_id", 0))
            chosen = [target] if target else []
        else:
            # The address the hold names, else every confirmed address (spec 2).
            chosen = [a for i, a in confirmed if i == email_id] or [a for _, a in confirmed]
        out.append(
            Outgoing(
                notice.id,
                notice.type,
                lang,
                name_en if lang == "en" and name_en else name,
                tuple(chosen),
                json.loads(notice.payload or "{}"),
                notice.attempts,
                notice.created_at,
            )
        )
    return out


async def mark_sent(session: AsyncSession, notice_id: int, *, now: dt.datetime) -> None:
    await session.execute(
        update(Notice)
        .where(Notice.id == notice_id)
        .values(
            status="sent",
            sent_at=now.replace(tzinfo=None),
            claimed_until=None,
            claimed_by=None,
            last_error=None,
        )
    )
    await session.commit()


async def mark_failed_attempt(
    session: AsyncSession, notice_id: int, error: str, *, attempts: int, now: dt.datetime
) -> None:
    """Try again later with back-off (1, 2, 4, 8 min); after MAX_ATTEMPTS it is failed, listed for staff."""
    final = attempts >= MAX_ATTEMPTS
    await session.execute(
        update(Notice)
        .where(Notice.id == notice_id)
        .values(
            status="failed" if final else "pending",
            last_error=error[:500],
            claimed_until=None,
            claimed_by=None,
            next_attempt_at=now.replace(tzinfo=None) + dt.timedelta(minutes=2 ** (attempts - 1)),
        )
    )
    await session.commit()


async def release(session: AsyncSession, notice_ids: Sequence[int], *, worker_id: str, error: str) -> None:
    """Give back claims that were not tried because the mail server is away: due again at once, and
    the claim's attempt is not counted (an hour-long outage must not use up a notice's attempts)."""
    if notice_ids:
        await session.execute(
            update(Notice)
            .where(Notice.id.in_(notice_ids), Notice.claimed_by == worker_id, Notice.status == "pending")
            .values(
                claimed_by=None,
                claimed_until=None,
                attempts=Notice.attempts - 1,
                last_error=f"mail server unavailable: {error}"[:500],
            )
            .execution_options(synchronize_session=False)
        )
    await session.commit()


async def due_count(session: AsyncSession, *, now: dt.datetime) -> int:
    """How many notices are waiting to be sent now (for the mailer's report during an outage)."""
    stamp = now.replace(tzinfo=None)
    waiting = await session.scalar(
        select(func.count()).where(
            Notice.status == "pending",
            or_(Notice.next_attempt_at.is_(None), Notice.next_attempt_at <= stamp),
        )
    )
    await session.commit()
    return int(waiting or 0)


async def mark_undeliverable(session: AsyncSession, notice_id: int, reason: str, *, now: dt.datetime) -> None:
    """No confirmed address: nothing to send to; kept as failed so staff can see it."""
    await session.execute(
        update(Notice)
        .where(Notice.id == notice_id)
        .values(status="failed", last_error=reason, claimed_until=None, claimed_by=None)
    )
    await session.commit()


async def counts(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(select(Notice.status, func.count()).group_by(Notice.status))
    return dict(rows.all())  # type: ignore[arg-type]

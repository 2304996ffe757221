"""The job that sends pending notices: claim a batch, send each, mark each sent (or retry later)."""

from __future__ import annotations

import logging
from typing import Any

import aiosmtplib
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import clock, mail
from app.services import notices
from app.settings import Settings

log = logging.getLogger("app.mailer")


async def deliver_pending(
    maker: async_sessionmaker[AsyncSession], settings: Settings, *, now=None
) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Send every notice that is due; safe to run in several workers at once and to run again."""
    now = now or clock.now()
    sent = failed = 0
    async with maker() as session:
        while batch := await notices.claim_batch(session, now=now):
            for notice in batch:
                if not notice.recipients:
                    await notices.mark_undeliverable(
                        session, notice.id, "no confirmed email address", now=now
                    )
                    failed += 1
                    continue
                try:
                    await mail.send(mail.render(notice, settings), settings)
                except (aiosmtplib.SMTPException, OSError) as error:
                    log.warning("notice %s not sent (attempt %s): %s", notice.id, notice.attempts, error)
                    await notices.mark_failed_attempt(
                        session, notice.id, str(error), attempts=notice.attempts, now=now
                    )
                    failed += 1
                    continue
                await notices.mark_sent(session, notice.id, now=now)
                sent += 1
    return {"sent": sent, "not_sent": failed}


async def send_notices(ctx: dict[str, Any]) -> dict[str, int]:
    """arq job: runs every minute and whenever the web side has just decided a mail."""
    return await deliver_pending(ctx["sessionmaker"], ctx["settings"])

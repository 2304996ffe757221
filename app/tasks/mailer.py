"""The job that sends pending notices: claim a batch, send each, mark each sent (or retry later).

Each sender announces itself in Redis (`<namespace>:mailer:<id>`, renewed with every mail, gone 60 s
after it stops). A sender killed mid-batch leaves claims behind; the next sender sees that their
owner is no longer announced and takes them over at once, so every notice still goes out, once.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import replace
from typing import Any

import aiosmtplib
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import clock, mail
from app.policy import get_policy
from app.services import emails, news, notices, registration, selfreg
from app.settings import Settings

log = logging.getLogger("app.mailer")
ALIVE_SECONDS = 60


def server_away(error: Exception) -> bool:
    """True when the mail server itself is unreachable or refusing everyone, not this one message.

    Connection refused, timed out or dropped (every OSError, aiosmtplib's connect and timeout
    errors included), "421 service not available", failed log-in or a missing STARTTLS: the
    notice is not at fault, so the attempt does not count and the notice waits for the server.
    """
    if isinstance(error, OSError | aiosmtplib.SMTPAuthenticationError | aiosmtplib.SMTPNotSupported):
        return True
    return isinstance(error, aiosmtplib.SMTPResponseException) and error.code == 421


def refused_for_good(error: Exception) -> bool:
    """A 5xx answer about this message (unknown recipient, rejected content): retrying cannot help."""
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        return all(refusal.code >= 500 for refusal in error.recipients)
    return isinstance(error, aiosmtplib.SMTPResponseException) and error.code >= 500


def _alive_key(namespace: str, worker_id: str = "") -> str:
    return f"{namespace}:mailer:{worker_id}"


async def _announce(redis: Redis | None, namespace: str, worker_id: str) -> list[str] | None:
    """Say this sender is alive; return every sender that is (None without Redis)."""
    if redis is None:
        return None
    await redis.set(_alive_key(namespace, worker_id), "1", ex=ALIVE_SECONDS)
    prefix = _alive_key(namespace)
    return [key.decode()[len(prefix) :] async for key in redis.scan_iter(match=prefix + "*", count=1000)]


async def deliver_pending(  # type: ignore[no-untyped-def]
    maker: async_sessionmaker[AsyncSession],
    settings: Settings,
    *,
    now=None,
    redis: Redis | None = None,
    worker_id: str | None = None,
) -> dict[str, int]:
    """Send every notice that is due; safe to run in several workers at once and to run again."""
    worker_id = worker_id or f"run-{uuid.uuid4().hex[:12]}"
    sent = failed = deferred = 0
    async with maker() as session:
        # Library news staff asked to mail becomes one notice per subscriber here, in the worker.
        await news.fan_out(session, now or clock.now())
        while True:
            # The time first, then the list of live senders: a claim made after the list was read
            # is then always newer than `when`, so claim_batch never mistakes it for a dead one's.
            when = now or clock.now()
            live = await _announce(redis, settings.redis_namespace, worker_id)
            batch = await notices.claim_batch(session, now=when, worker_id=worker_id, live_workers=live)
            if not batch:
                break
            away = False
            for position, notice in enumerate(batch):
                if not notice.recipients:
                    await notices.mark_undeliverable(
                        session, notice.id, "no confirmed email address", now=when
                    )
                    failed += 1
                    continue
                if notice.type == "email_confirmation":
                    email_id = int(str(notice.payload.get("email_id", 0)))
                    token = await emails.issue_token(session, email_id, now=when)
                    if token is None:
                        await notices.mark_undeliverable(
                            session, notice.id, "address already confirmed", now=when
                        )
                        continue
                    link = f"{settings.base_url}/account/emails/confirm?token={token}"
                    notice = replace(notice, payload={**notice.payload, "link": link})
                if notice.type == "registration_confirm":
                    token = await selfreg.issue_token(
                        session, int(str(notice.payload.get("registration_id", 0))), now=when
                    )
                    if token is None:
                        await notices.mark_undeliverable(session, notice.id, "already confirmed", now=when)
                        continue
                    link = f"{settings.base_url}/register/confirm?token={token}"
                    notice = replace(notice, payload={**notice.payload, "link": link})
                if notice.type == "temporary_password":
                    # Fukuoka: the password is made now and mailed; only its hash is stored.
                    password = await registration.mailed_temporary_password(
                        session, notice.id, get_policy(settings.library_policy)
                    )
                    notice = replace(notice, payload={**notice.payload, "password": password})
                try:
                    await mail.send(mail.render(notice, settings), settings)
                except (aiosmtplib.SMTPException, OSError) as error:
                    if server_away(error):
                        # The server is down, not this mail: give the rest of the batch back
                        # uncounted and stop; the next run (every minute) tries again.
                        rest = [n.id for n in batch[position:]]
                        await notices.release(session, rest, worker_id=worker_id, error=str(error))
                        deferred = await notices.due_count(session, now=when)
                        log.warning("mail server unavailable, %s notices wait: %s", deferred, error)
                        away = True
                        break
                    log.warning("notice %s not sent (attempt %s): %s", notice.id, notice.attempts, error)
                    await notices.mark_failed_attempt(
                        session,
                        notice.id,
                        str(error),
                        attempts=notices.MAX_ATTEMPTS if refused_for_good(error) else notice.attempts,
                        now=when,
                    )
                    failed += 1
                    continue
                await notices.mark_sent(session, notice.id, now=when)
                sent += 1
                if redis is not None:
                    await redis.expire(_alive_key(settings.redis_namespace, worker_id), ALIVE_SECONDS)
            if away:
                break
    if redis is not None:
        await redis.delete(_alive_key(settings.redis_namespace, worker_id))
    return {"sent": sent, "not_sent": failed, "waiting": deferred}


async def send_notices(ctx: dict[str, Any]) -> dict[str, int]:
    """arq job: runs every minute and whenever the web side has just decided a mail."""
    # Each run announces itself under its own id: a worker may run two at once (its minute cron and
    # a run the web side asked for), and one run ending must not withdraw the other's announcement
    # (seen: the other's claims were then taken over and 4 mails in 100 went twice).
    run_id = f"{ctx['worker_id']}.{uuid.uuid4().hex[:8]}"
    return await deliver_pending(ctx["sessionmaker"], ctx["settings"], redis=ctx["redis"], worker_id=run_id)

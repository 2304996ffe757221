"""Enqueue helpers the web side uses; jobs take ids, never objects."""

from __future__ import annotations

import logging

from arq import ArqRedis

from app.tasks.names import SEND_NOTICES

log = logging.getLogger("app.queue")


def queue_name(namespace: str) -> str:
    return f"{namespace}:queue"


async def kick_mailer(pool: ArqRedis | None, namespace: str) -> None:
    """Ask the worker to send the notices just decided, now rather than at its next minute."""
    if pool is None:
        return
    try:
        # One queued run at a time is enough: a fixed job id makes a second request a no-op.
        await pool.enqueue_job(
            SEND_NOTICES, _job_id=f"{namespace}:send-notices-now", _queue_name=queue_name(namespace)
        )
    except OSError as error:  # Redis away: the worker's minute cron sends them anyway
        log.warning("could not enqueue %s: %s", SEND_NOTICES, error)

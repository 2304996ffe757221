"""arq WorkerSettings: the functions, cron jobs and start-up of the background worker."""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

from arq import cron, func
from arq.connections import RedisSettings

from app.clock import TZ
from app.db import make_engine, make_sessionmaker
from app.settings import get_settings
from app.tasks.daily import daily_jobs
from app.tasks.heartbeat import heartbeat
from app.tasks.mailer import send_notices
from app.tasks.queue import queue_name


async def on_startup(ctx: dict[str, Any]) -> None:
    settings = get_settings()
    ctx["settings"] = settings
    ctx["engine"] = make_engine(settings.database_url)
    ctx["sessionmaker"] = make_sessionmaker(ctx["engine"])
    ctx["worker_id"] = f"worker-{uuid.uuid4().hex[:12]}"


async def on_shutdown(ctx: dict[str, Any]) -> None:
    await ctx["engine"].dispose()


class WorkerSettings:
    """Static part of the worker's settings; run_worker() adds what depends on the environment."""

    functions: ClassVar = [heartbeat, func(send_notices, keep_result=0), daily_jobs]
    cron_jobs: ClassVar = [
        cron(heartbeat, second=0, run_at_startup=True, unique=True),
        cron(send_notices, second=30, run_at_startup=True, unique=True),
        cron(daily_jobs, hour=6, minute=0, second=0, unique=True),  # 06:00 in the library's time zone
    ]
    timezone = TZ
    on_startup = on_startup
    on_shutdown = on_shutdown
    max_tries = 5
    # How often the worker looks for queued jobs (arq's default is 0.5 s): a mail the web side has
    # just asked for (a hold placed, an address to confirm) starts within 0.1 s; ~10 Redis reads a
    # second per worker.
    poll_delay = 0.1


def environment_overrides() -> dict[str, Any]:
    """Redis address and a queue name per namespace, so test runs and libraries never share a queue."""
    settings = get_settings()
    return {
        "redis_settings": RedisSettings.from_dsn(settings.redis_url),
        "queue_name": queue_name(settings.redis_namespace),
        "health_check_key": f"{settings.redis_namespace}:worker:health",
    }

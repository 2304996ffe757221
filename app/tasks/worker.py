"""arq WorkerSettings: the functions, cron jobs and start-up of the background worker."""

from __future__ import annotations

from typing import Any, ClassVar

from arq import cron
from arq.connections import RedisSettings

from app.db import make_engine, make_sessionmaker
from app.settings import get_settings
from app.tasks.heartbeat import heartbeat


async def on_startup(ctx: dict[str, Any]) -> None:
    settings = get_settings()
    ctx["settings"] = settings
    ctx["engine"] = make_engine(settings.database_url)
    ctx["sessionmaker"] = make_sessionmaker(ctx["engine"])


async def on_shutdown(ctx: dict[str, Any]) -> None:
    await ctx["engine"].dispose()


class WorkerSettings:
    """Static part of the worker's settings; run_worker() adds what depends on the environment."""

    functions: ClassVar = [heartbeat]
    cron_jobs: ClassVar = [cron(heartbeat, second=0, run_at_startup=True, unique=True)]
    on_startup = on_startup
    on_shutdown = on_shutdown
    max_tries = 5


def environment_overrides() -> dict[str, Any]:
    """Redis address and a queue name per namespace, so test runs and libraries never share a queue."""
    settings = get_settings()
    return {
        "redis_settings": RedisSettings.from_dsn(settings.redis_url),
        "queue_name": f"{settings.redis_namespace}:queue",
        "health_check_key": f"{settings.redis_namespace}:worker:health",
    }

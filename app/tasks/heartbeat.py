"""A job that proves the worker is alive: it records the time in Redis every minute."""

from __future__ import annotations

from typing import Any

from app import clock


def heartbeat_key(namespace: str) -> str:
    return f"{namespace}:worker:heartbeat"


async def heartbeat(ctx: dict[str, Any]) -> str:
    stamp = clock.now().isoformat()
    await ctx["redis"].set(heartbeat_key(ctx["settings"].redis_namespace), stamp, ex=600)
    return stamp

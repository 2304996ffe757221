"""Helpers shared by unit and browser tests: real Redis, real SQLite files, the demo library."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import uuid
from pathlib import Path

import redis

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def require_redis() -> None:
    """Fail (never skip) with a message that says what to start."""
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        raise RuntimeError(
            f"Redis is not reachable at {REDIS_URL} ({exc}). Install and start it: "
            "apt-get install -y redis-server && redis-server --daemonize yes, or set TEST_REDIS_URL."
        ) from exc


def new_namespace() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


def clear_namespace(namespace: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(f"{namespace}:*", count=1000))
    if keys:
        client.delete(*keys)


def build_demo_database(path: Path) -> None:
    """Migrate a fresh SQLite file with Alembic and load the demo library into it."""
    from app import clock
    from app.cli import migrate
    from app.db import session_scope
    from app.demo import load_demo

    url = f"sqlite+aiosqlite:///{path}"
    migrate(url)

    async def load() -> None:
        async with session_scope(url) as session:
            await load_demo(session, clock.today())

    asyncio.run(load())


def copy_database(template: Path, target: Path) -> str:
    shutil.copyfile(template, target)
    return f"sqlite+aiosqlite:///{target}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]

"""Helpers for unit and browser tests: real Redis, SQLite files or PostgreSQL databases, the demo library."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import socket
import uuid
from pathlib import Path

import redis
from sqlalchemy import Engine
from sqlalchemy.pool import NullPool

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# Which database the suite runs on: "sqlite" (default) or "postgresql" (scripts/test.sh runs both).
BACKEND = os.environ.get("TEST_DATABASE", "sqlite")
if BACKEND not in ("sqlite", "postgresql"):
    raise RuntimeError(f"TEST_DATABASE must be sqlite or postgresql, not {BACKEND!r}")
# A PostgreSQL server where the tests may create and drop databases (each test gets its own).
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


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


def _postgres_admin(*statements: str) -> None:
    """Run statements on the server's maintenance database (sync psycopg: works beside Playwright's loop)."""
    import psycopg

    with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5) as connection:
        for statement in statements:
            connection.execute(statement)  # type: ignore[arg-type]


def require_postgres() -> None:
    """Fail (never skip) with a message that says what to start."""
    try:
        _postgres_admin("SELECT 1")
    except (OSError, Exception) as exc:
        raise RuntimeError(
            f"PostgreSQL is not reachable at {POSTGRES_URL} ({exc}). Install and start it: "
            "apt-get install -y postgresql && pg_ctlcluster 15 main start (trust auth for 127.0.0.1), "
            "or set TEST_POSTGRES_URL."
        ) from exc


def postgres_url(name: str) -> str:
    base, _, _ = POSTGRES_URL.rpartition("/")
    return base.replace("postgresql://", "postgresql+asyncpg://", 1) + "/" + name


def new_database_name(prefix: str) -> str:
    return f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"


def create_postgres_database(name: str, template: str | None = None) -> str:
    """A fresh database (a copy of `template` when given); returns its SQLAlchemy URL."""
    suffix = f" TEMPLATE {template}" if template else ""
    _postgres_admin(f"CREATE DATABASE {name}{suffix}")
    return postgres_url(name)


def drop_postgres_database(name: str) -> None:
    _postgres_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def build_demo_database(path: Path) -> None:
    """Migrate a fresh SQLite file with Alembic and load the demo library into it."""
    load_demo_into(f"sqlite+aiosqlite:///{path}")


def load_demo_into(url: str) -> None:
    """Migrate the database at `url` with Alembic and load the demo library into it."""
    from app import clock
    from app.cli import migrate
    from app.db import session_scope
    from app.demo import load_demo

    migrate(url)

    async def load() -> None:
        async with session_scope(url) as session:
            await load_demo(session, clock.today())

    asyncio.run(load())


def copy_database(template: Path, target: Path) -> str:
    shutil.copyfile(template, target)
    return f"sqlite+aiosqlite:///{target}"


# Each database's chain of tests takes its ports from a range of its own, below Linux's ephemeral
# range (32768-60999): the two chains run side by side (scripts/test.sh), and a port the kernel
# chose (a bind to port 0) was free to be chosen again by the other chain before the first one's
# server bound it. A browser test's app once met the other chain's SMTP server on its own port.
_PORTS = {"sqlite": range(20000, 26000), "postgresql": range(26000, 32000)}
_GIVEN: set[int] = set()  # handed out by this process: a server may not have bound it yet


def free_port() -> int:
    ports = _PORTS[BACKEND]
    start = random.randrange(len(ports))
    for offset in range(len(ports)):
        port = ports[(start + offset) % len(ports)]
        if port in _GIVEN:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use, or still held by a closing connection
        _GIVEN.add(port)
        return port
    raise RuntimeError(f"no free port in {ports}")


def sync_engine(url: str) -> Engine:
    """A synchronous engine on the same database as the app's async URL (tests that poke at rows)."""
    from sqlalchemy import create_engine

    return create_engine(url.replace("+aiosqlite", "").replace("+asyncpg", "+psycopg"), poolclass=NullPool)

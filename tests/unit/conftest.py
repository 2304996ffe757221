"""Fixtures: a demo-library SQLite file per test (copied from one built per session), real Redis."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncSession

from app import clock
from app.db import make_engine, make_sessionmaker
from app.main import construction_key, create_app
from app.settings import Settings, load_settings
from tests.support import (
    BACKEND,
    REDIS_URL,
    build_demo_database,
    clear_namespace,
    copy_database,
    create_postgres_database,
    drop_postgres_database,
    free_port,
    load_demo_into,
    new_database_name,
    new_namespace,
    require_postgres,
    require_redis,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path | str]:
    """The demo library, built once: a SQLite file, or a PostgreSQL database used as a template."""
    require_redis()
    clock.set_today(None)
    if BACKEND == "postgresql":
        require_postgres()
        name = new_database_name("mylib_template")
        load_demo_into(create_postgres_database(name))
        yield name
        drop_postgres_database(name)
        return
    path = tmp_path_factory.mktemp("template") / "demo.sqlite3"
    build_demo_database(path)
    yield path


@pytest.fixture
def database_url(demo_template: Path | str, tmp_path: Path) -> Iterator[str]:
    """Each test's own copy of the demo library (a file copy, or CREATE DATABASE ... TEMPLATE)."""
    if BACKEND == "postgresql":
        name = new_database_name("mylib_test")
        yield create_postgres_database(name, template=str(demo_template))
        drop_postgres_database(name)
        return
    yield copy_database(Path(demo_template), tmp_path / "library.sqlite3")


@pytest.fixture
def namespace() -> AsyncIterator[str]:
    ns = new_namespace()
    yield ns
    clear_namespace(ns)


def make_settings(database_url: str, namespace: str, tmp_path: Path, **extra: str) -> Settings:
    return load_settings(
        {
            "APP_ENV": "test",
            "DATABASE_URL": database_url,
            "REDIS_URL": REDIS_URL,
            "REDIS_NAMESPACE": namespace,
            "VAR_DIR": str(tmp_path / "var"),
            "SECRET_KEY": "t" * 48,
            **extra,
        }
    )


@pytest.fixture
def settings(database_url: str, namespace: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, namespace, tmp_path)


_APPS: dict[Settings, Litestar] = {}


@pytest.fixture
def app(settings: Settings) -> Litestar:
    """The app for this test's database and Redis namespace. Building one costs ~0.3 s of CPU
    (Litestar models every handler's signature), so an app is built once per construction key and
    started again for each test with that test's settings (app.main.construction_key)."""
    key = construction_key(settings)
    app = _APPS.get(key)
    if app is None:
        app = _APPS[key] = create_app(settings)
    app.state.settings = settings
    return app


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient]:
    async with AsyncTestClient(app=app, base_url="http://testserver.local") as c:
        yield c


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[AsyncSession]:
    engine = make_engine(database_url)
    async with make_sessionmaker(engine)() as session:
        yield session
    await engine.dispose()


CSRF_RE = re.compile(r'name="_csrf_token" value="([^"]+)"')


def csrf_from(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "page has no CSRF field"
    return match.group(1)


async def login(
    client: AsyncTestClient,
    card: str = "100000017",
    password: str = "hanako-2026",
    next_path: str = "/mylibrary",
):  # type: ignore[no-untyped-def]
    page = await client.get("/login")
    token = csrf_from(page.text)
    return await client.post(
        "/login",
        data={"_csrf_token": token, "card_number": card, "password": password, "next": next_path},
        follow_redirects=False,
    )


async def token(client: AsyncTestClient, path: str = "/loans") -> str:
    page = await client.get(path)
    return csrf_from(page.text)


class Inbox:
    """What a real SMTP server (aiosmtpd) received: (recipients, parsed message)."""

    def __init__(self) -> None:
        self.messages: list = []  # type: ignore[type-arg]

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content, policy=policy.default)))
        return "250 OK"


@pytest.fixture
def smtp():  # type: ignore[no-untyped-def]
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, inbox
    controller.stop()


def _wait_for(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url + "/healthz", timeout=1)
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"the server did not start:\n{log.read_text()}") from None
            time.sleep(0.2)


@pytest.fixture
def cluster(database_url: str, tmp_path: Path) -> Iterator[tuple[list[str], dict[str, str]]]:
    """Two `python -m app serve` processes sharing one database, one Redis namespace and one secret."""
    namespace = new_namespace()
    env = {
        **os.environ,
        "APP_ENV": "test",
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "REDIS_NAMESPACE": namespace,
        "SECRET_KEY": "s" * 48,
        "VAR_DIR": str(tmp_path / "var"),
    }
    processes, urls = [], []
    try:
        for n in range(2):
            port = free_port()
            log = tmp_path / f"web{n}.log"
            with log.open("wb") as out:
                process = subprocess.Popen(
                    [sys.executable, "-m", "app", "serve", "--port", str(port)],
                    env=env,
                    cwd=ROOT,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            processes.append(process)
            urls.append(f"http://127.0.0.1:{port}")
            _wait_for(urls[-1], process, log)
        yield urls, env
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        clear_namespace(namespace)


async def add_due_notices(db: AsyncSession, prefix: str, count: int) -> None:
    """`count` card-expiry notices for Hanako, due long ago, with dedup keys `<prefix>:<n>`."""
    import datetime as dt

    from sqlalchemy import insert, select

    from app.models import Notice, Patron

    hanako = await db.scalar(select(Patron.id).where(Patron.card_number == "100000017"))
    await db.execute(
        insert(Notice),
        [
            {
                "type": "card_expiry",
                "patron_id": hanako,
                "dedup_key": f"{prefix}:{n}",
                "payload": '{"expires_on": "2030-01-01"}',
                "next_attempt_at": dt.datetime(2020, 1, 1),
            }
            for n in range(count)
        ],
    )
    await db.commit()

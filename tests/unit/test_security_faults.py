"""Redis going away during requests: pages still render, actions say "try again shortly", nothing is
half-written, and everything works again when Redis is back.

Uses its own redis-server on a free port (the shared one is never touched).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.main import create_app
from app.models import Loan, Patron
from tests.support import free_port
from tests.unit.conftest import csrf_from, login, make_settings
from tests.unit.test_security_matrix import SECURITY_FIGURES


class PrivateRedis:
    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is missing: apt-get install -y redis-server")
        self.binary, self.directory, self.port = binary, directory, free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(self.url).ping()
                return
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "private redis-server did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def pause(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        if server.process is not None:
            server.resume()
        server.stop()


async def _renewals(db: AsyncSession) -> list[tuple[int, int]]:
    await db.rollback()
    hanako = await db.scalar(select(Patron.id).where(Patron.card_number == "100000017"))
    rows = await db.execute(select(Loan.id, Loan.renewals).where(Loan.patron_id == hanako).order_by(Loan.id))
    return [tuple(r) for r in rows]  # type: ignore[misc]


async def test_redis_away_then_back(
    private_redis: PrivateRedis, database_url: str, namespace: str, tmp_path: Path, db: AsyncSession
) -> None:
    app = create_app(make_settings(database_url, namespace, tmp_path, REDIS_URL=private_redis.url))
    faults = 0
    async with AsyncTestClient(app=app, base_url="http://testserver.local") as client:
        assert (await login(client)).status_code == 303
        loans_page = await client.get("/loans?lang=en")
        token = csrf_from(loans_page.text)
        loan_id = int(loans_page.text.split('action="/loans/', 1)[1].split("/", 1)[0])
        before = await _renewals(db)

        private_redis.stop()  # refused connections
        faults += 1
        for path in ("/", "/search?q=%E7%8C%AB", "/bibs/1", "/calendar"):
            page = await client.get(path)
            assert page.status_code == 200, f"{path} while Redis is away: {page.status_code}"
        for path in ("/mylibrary", "/loans"):
            page = await client.get(path + "?lang=en", follow_redirects=False)
            assert page.status_code == 503 and "try again" in page.text, path  # not "logged out"
            assert page.headers["retry-after"] == "30"
        for path, data in (
            (f"/loans/{loan_id}/renew", {}),
            ("/cart", {"bib_id": "1"}),
            ("/loans/renew-all", {}),
        ):
            for headers in ({}, {"HX-Request": "true"}):
                response = await client.post(
                    path, data={**data, "_csrf_token": token}, headers=headers, follow_redirects=False
                )
                assert response.status_code == 503, f"POST {path}: {response.status_code}"
        assert await _renewals(db) == before  # nothing half-written

        private_redis.start()  # back, but empty (no persistence): the session is gone, log in again
        faults += 1
        assert (await client.get("/mylibrary", follow_redirects=False)).status_code == 303
        assert (await login(client)).status_code == 303
        assert (await client.get("/mylibrary")).status_code == 200

        private_redis.pause()  # a Redis that hangs: answered within the client's timeout, not never
        faults += 1
        started = time.monotonic()
        page = await client.get("/mylibrary", follow_redirects=False)
        assert page.status_code == 503 and time.monotonic() - started < 10
        private_redis.resume()
        assert (await client.get("/mylibrary")).status_code == 200
    SECURITY_FIGURES["faults injected: Redis refused, restarted, hung (503, nothing written)"] = faults

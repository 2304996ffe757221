"""The operator's commands run as real processes: the arq worker, the development mailbox, migrate."""

from __future__ import annotations

import os
import smtplib
import subprocess
import sys
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
import redis
from sqlalchemy import inspect, text

from app.tasks.heartbeat import heartbeat_key
from tests.support import (
    BACKEND,
    REDIS_URL,
    clear_namespace,
    create_postgres_database,
    drop_postgres_database,
    free_port,
    new_database_name,
    new_namespace,
    sync_engine,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def empty_database(tmp_path: Path) -> Iterator[str]:
    """An empty database on the suite's backend: a new SQLite file or a new PostgreSQL database."""
    if BACKEND == "postgresql":
        name = new_database_name("mylib_empty")
        yield create_postgres_database(name)
        drop_postgres_database(name)
    else:
        yield f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}"


def _env(tmp_path: Path, url: str = "", **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "APP_ENV": "test",
        "VAR_DIR": str(tmp_path / "var"),
        "REDIS_URL": REDIS_URL,
        "DATABASE_URL": url or f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}",
        **extra,
    }


def test_migrate_creates_the_schema_from_alembic(tmp_path: Path, empty_database: str) -> None:
    env = _env(tmp_path, empty_database)
    subprocess.run([sys.executable, "-m", "app", "migrate"], env=env, cwd=ROOT, check=True)
    tables = set(inspect(sync_engine(empty_database)).get_table_names())
    assert {
        "patrons",
        "loans",
        "holds",
        "items",
        "bibs",
        "branches",
        "closed_days",
        "alembic_version",
    } <= tables


def test_worker_runs_its_heartbeat_job(tmp_path: Path) -> None:
    namespace = new_namespace()
    try:
        subprocess.run([sys.executable, "-m", "app", "migrate"], env=_env(tmp_path), cwd=ROOT, check=True)
        result = subprocess.run(
            [sys.executable, "-m", "app", "worker", "--burst"],
            env=_env(tmp_path, REDIS_NAMESPACE=namespace),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        stamp = redis.Redis.from_url(REDIS_URL).get(heartbeat_key(namespace))
        assert stamp is not None and stamp.decode()[:4].isdigit()
    finally:
        clear_namespace(namespace)


def test_development_mailbox_keeps_every_mail(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "mailbox", "--port", str(port)],
        env=_env(tmp_path),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                client = smtplib.SMTP("127.0.0.1", port, timeout=2)
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, "mailbox did not start"
                time.sleep(0.2)
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = (
            "library@example.jp",
            "hanako@example.jp",
            "テスト",
        )
        message.set_content("ご用意できました")
        with client:
            client.send_message(message)
        kept = list((tmp_path / "var" / "mailbox").glob("*.eml"))
        assert len(kept) == 1 and "hanako@example.jp" in kept[0].read_text()
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_migrations_upgrade_a_database_that_holds_data(tmp_path: Path, empty_database: str) -> None:
    """Each migration must run on a library in use, not only on an empty database."""
    env = _env(tmp_path, empty_database)
    from app.cli import migrate

    migrate(empty_database, "0001")
    engine = sync_engine(empty_database)
    with engine.begin() as con:
        if BACKEND == "sqlite":
            con.execute(text("PRAGMA foreign_keys=ON"))
        con.execute(text("INSERT INTO branches (code, name_ja, name_en) VALUES ('b', 'b', 'b')"))
        con.execute(
            text(
                "INSERT INTO patrons (card_number, card_expires_on, name) "
                "VALUES ('100000017', '2030-01-01', 'x')"
            )
        )
        con.execute(text("INSERT INTO bibs (title) VALUES ('吾輩は猫である')"))
        con.execute(text("INSERT INTO items (barcode, bib_id, branch_id) VALUES ('1', 1, 1)"))
        con.execute(
            text(
                "INSERT INTO holds (patron_id, bib_id, placed_at, pickup_branch_id) "
                "VALUES (1, 1, '2026-01-01', 1)"
            )
        )
    done = subprocess.run(
        [sys.executable, "-m", "app", "migrate"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    with engine.connect() as con:
        assert con.execute(text("SELECT count(*) FROM holds")).scalar_one() == 1
        if BACKEND == "sqlite":
            assert con.execute(
                text("SELECT rowid FROM bib_fts WHERE bib_fts MATCH :q"), {"q": '"猫で"'}
            ).all()
            assert con.execute(text("PRAGMA foreign_key_check")).all() == []
        else:  # the existing title was indexed by migration 0012
            query = text("SELECT key FROM bib_search WHERE doc @@ CAST(:q AS tsquery)")
            assert con.execute(query, {"q": "'猫で'"}).all()
    engine.dispose()


def test_the_served_app_freezes_its_start_up_heap(monkeypatch: pytest.MonkeyPatch) -> None:
    """`python -m app serve` runs create_server_app: once started, what start-up built is frozen, so a
    full garbage collection no longer walks it (those walks stalled a worker for 130–170 ms)."""
    import gc

    from litestar import Litestar
    from litestar.testing import TestClient

    from app import main

    monkeypatch.setattr(main, "create_app", lambda: Litestar(route_handlers=[]))
    monkeypatch.setattr(main, "_compile_templates", lambda app: None)  # this app has no pages
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    try:
        with TestClient(main.create_server_app()):
            assert gc.get_freeze_count() > 1000
    finally:
        gc.unfreeze()

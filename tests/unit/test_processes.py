"""The operator's commands run as real processes: the arq worker, the development mailbox, migrate."""

from __future__ import annotations

import os
import smtplib
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path

import redis
from sqlalchemy import create_engine, inspect

from app.tasks.heartbeat import heartbeat_key
from tests.support import REDIS_URL, clear_namespace, free_port, new_namespace

ROOT = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "APP_ENV": "test",
        "VAR_DIR": str(tmp_path / "var"),
        "REDIS_URL": REDIS_URL,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}",
        **extra,
    }


def test_migrate_creates_the_schema_from_alembic(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "app", "migrate"], env=_env(tmp_path), cwd=ROOT, check=True)
    tables = set(inspect(create_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")).get_table_names())
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

"""The front-end budget: Lighthouse 12 (mobile) scores at least 95 in performance, accessibility,
best practices and SEO on the log-in page, dashboard, search results, title page, cart and holds, and the
dashboard transfers at most 60 KB on first load. Lighthouse drives Debian's Chromium (CHROME_PATH).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.browser.conftest import LiveServer, log_in

# The front end does not depend on the database: scripts/test.sh runs these once (on SQLite).
pytestmark = pytest.mark.frontend

LIGHTHOUSE = Path(__file__).resolve().parents[1] / "lighthouse" / "node_modules" / ".bin" / "lighthouse"
CATEGORIES = ("performance", "accessibility", "best-practices", "seo")
MIN_SCORE = 0.95
DASHBOARD_MAX_BYTES = 60 * 1024


def _lighthouse(url: str, out: Path, cookie: str | None = None) -> dict:  # type: ignore[type-arg]
    if not LIGHTHOUSE.exists():
        raise RuntimeError(
            "Lighthouse is not installed: npm ci --prefix tests/lighthouse (scripts/setup.sh does)"
        )
    chromium = shutil.which("chromium")
    if chromium is None:
        raise RuntimeError("Chromium is not installed: apt-get install -y chromium (Debian's package).")
    command = [
        str(LIGHTHOUSE),
        url,
        "--quiet",
        "--form-factor=mobile",
        "--only-categories=" + ",".join(CATEGORIES),
        "--output=json",
        f"--output-path={out}",
        "--chrome-flags=--headless=new --no-sandbox --disable-gpu --disable-background-networking "
        "--disable-component-update --disable-sync --no-first-run",
    ]
    if cookie:
        command.append("--extra-headers=" + json.dumps({"Cookie": cookie}))
    done = subprocess.run(
        command, env={**os.environ, "CHROME_PATH": chromium}, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(out.read_text())  # type: ignore[no-any-return]


def _failures(report: dict) -> list[str]:  # type: ignore[type-arg]
    scores = {name: report["categories"][name]["score"] for name in CATEGORIES}
    # One line a page, for the record (pytest -s shows it; CI's log keeps it on a failure).
    print(f"lighthouse {report['finalDisplayedUrl']}: " + ", ".join(f"{k} {v}" for k, v in scores.items()))
    low = [f"{name} {score}" for name, score in scores.items() if score is None or score < MIN_SCORE]
    if not low:
        return []
    audits = [
        f"{key}: {audit.get('displayValue') or audit.get('title')}"
        for key, audit in report["audits"].items()
        if audit.get("score") is not None and audit["score"] < 0.9
    ]
    return [f"{report['finalDisplayedUrl']}: {', '.join(low)} — {'; '.join(audits[:8])}"]


@pytest.mark.parametrize("path", ["/login?lang=ja", "/search?q=猫&lang=en", "/bibs/3?lang=ja"])
def test_guest_pages_meet_the_lighthouse_budget(server: LiveServer, tmp_path: Path, path: str) -> None:
    assert _failures(_lighthouse(server.url + path, tmp_path / "report.json")) == []


def test_patron_pages_meet_the_lighthouse_budget(phone: Page, server: LiveServer, tmp_path: Path) -> None:
    log_in(phone)
    phone.goto("/cart?lang=ja")
    session = next(c for c in phone.context.cookies() if c["name"] == "session")
    cookie = f"session={session['value']}"
    failures = []
    for name, path in (("dashboard", "/mylibrary"), ("cart", "/cart"), ("holds", "/holds")):
        report = _lighthouse(server.url + path + "?lang=ja", tmp_path / f"{name}.json", cookie)
        failures += _failures(report)
        if name == "dashboard":
            transferred = report["audits"]["total-byte-weight"]["numericValue"]
            assert transferred <= DASHBOARD_MAX_BYTES, f"the dashboard transfers {transferred:.0f} bytes"
    assert failures == []

"""Headers and cookies, in development/test and in production, and no version banner from either server."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from http.cookies import SimpleCookie
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from app.main import create_app
from tests.support import free_port
from tests.unit.conftest import csrf_from, make_settings

ROOT = Path(__file__).resolve().parents[2]


def _cookie_flags(headers: list[str], name: str) -> str:
    for header in headers:
        if header.startswith(f"{name}="):
            return header.lower()
    raise AssertionError(f"no {name} cookie in {headers}")


@pytest.mark.parametrize("production", [False, True])
async def test_headers_and_cookie_flags(
    production: bool, database_url: str, namespace: str, tmp_path: Path
) -> None:
    extra = {"APP_ENV": "production", "BASE_URL": "https://library.example.jp"} if production else {}
    app = create_app(make_settings(database_url, namespace, tmp_path, **extra))
    async with AsyncTestClient(app=app, base_url="https://testserver.local") as client:
        page = await client.get("/login")
        csp = page.headers["content-security-policy"]
        for directive in (
            "script-src 'self'",
            "frame-ancestors 'none'",
            "object-src 'none'",
            "base-uri 'none'",
        ):
            assert directive in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["referrer-policy"] == "same-origin"
        assert page.headers["x-frame-options"] == "DENY"
        assert ("strict-transport-security" in page.headers) is production
        if production:
            assert "max-age=31536000" in page.headers["strict-transport-security"]
        assert "server" not in page.headers and "x-powered-by" not in page.headers
        csrf = _cookie_flags(page.headers.get_list("set-cookie"), "csrftoken")
        assert "httponly" in csrf and "samesite=lax" in csrf and ("secure" in csrf) is production

        response = await client.post(
            "/login",
            data={"_csrf_token": csrf_from(page.text), "card_number": "100000017", "password": "hanako-2026"},
            follow_redirects=False,
        )
        assert response.status_code == 303
        session = _cookie_flags(response.headers.get_list("set-cookie"), "session")
        assert "httponly" in session and "samesite=lax" in session and ("secure" in session) is production
        value = SimpleCookie(response.headers.get_list("set-cookie")[-1])
        assert value  # parsable


@pytest.mark.parametrize("server", ["uvicorn", "granian"])
def test_no_version_banner_from_either_server(
    server: str, database_url: str, namespace: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "APP_ENV": "test",
        "DATABASE_URL": database_url,
        "REDIS_NAMESPACE": namespace,
        "VAR_DIR": str(tmp_path / "var"),
        "SECRET_KEY": "t" * 48,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--port", str(port), "--server", server],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=2)
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, f"{server} did not start"
                time.sleep(0.2)
        names = {name.lower() for name in response.headers}
        assert "x-powered-by" not in names, dict(response.headers)
        if server == "uvicorn":
            assert "server" not in names, dict(response.headers)  # server_header=False
        else:
            # granian always names itself (emmett-framework/granian#594 has no switch yet), but with no
            # version; the README's nginx example hides it (proxy_hide_header Server).
            assert response.headers.get("server") == "granian", dict(response.headers)
    finally:
        process.terminate()
        process.wait(timeout=10)

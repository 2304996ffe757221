"""A live server (its own process, its own demo database) and Debian's Chromium through Playwright."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

from tests.support import (
    BACKEND,
    REDIS_URL,
    clear_namespace,
    copy_database,
    create_postgres_database,
    drop_postgres_database,
    free_port,
    new_database_name,
    new_namespace,
    require_postgres,
    require_redis,
)

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 900}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.browser)


ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path | str]:
    """Built with the operator's commands (`migrate`, `demo-data`), in their own processes.

    On PostgreSQL (TEST_DATABASE=postgresql) it is a database each test's database is copied from."""
    require_redis()
    tmp = tmp_path_factory.mktemp("template")
    name = ""
    if BACKEND == "postgresql":
        require_postgres()
        name = new_database_name("mylib_btemplate")
        url = create_postgres_database(name)
    else:
        url = f"sqlite+aiosqlite:///{tmp / 'demo.sqlite3'}"
    env = {**os.environ, "APP_ENV": "test", "DATABASE_URL": url, "VAR_DIR": str(tmp)}
    for command in ("migrate", "demo-data"):
        subprocess.run([sys.executable, "-m", "app", command], env=env, cwd=ROOT, check=True)
    if name:
        yield name
        drop_postgres_database(name)
    else:
        yield tmp / "demo.sqlite3"


class LiveServer:
    def __init__(self, url: str, process: subprocess.Popen[bytes], log: Path, env: dict[str, str]) -> None:
        self.url, self.process, self.log, self.env = url, process, log, env


@pytest.fixture
def server(demo_template: Path | str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    """`python -m app serve` on a free port, against a fresh copy of the demo database.

    `@pytest.mark.policy("fukuoka")` runs the server with that library's policy.
    """
    marker = request.node.get_closest_marker("policy")
    port = free_port()
    namespace = new_namespace()
    database = ""
    if BACKEND == "postgresql":
        database = new_database_name("mylib_btest")
        url = create_postgres_database(database, template=str(demo_template))
    else:
        url = copy_database(Path(demo_template), tmp_path / "lib.sqlite3")
    env = {
        **os.environ,
        "APP_ENV": "test",
        "DATABASE_URL": url,
        "REDIS_URL": REDIS_URL,
        "REDIS_NAMESPACE": namespace,
        "VAR_DIR": str(tmp_path / "var"),
        "SECRET_KEY": "b" * 48,
        "LIBRARY_POLICY": marker.args[0] if marker else "default",
    }
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parents[2],
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url + "/login", timeout=1)
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"the server did not start:\n{log.read_text()}") from None
            time.sleep(0.2)
    yield LiveServer(
        url,
        process,
        log,
        {
            k: env[k]
            for k in (
                "APP_ENV",
                "DATABASE_URL",
                "REDIS_URL",
                "REDIS_NAMESPACE",
                "VAR_DIR",
                "SECRET_KEY",
                "LIBRARY_POLICY",
            )
        },
    )
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
    clear_namespace(namespace)
    if database:
        drop_postgres_database(database)


@pytest.fixture(scope="session")
def playwright_instance() -> Iterator[Playwright]:
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="session")
def browser(playwright_instance: Playwright) -> Iterator[Browser]:
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        raise RuntimeError("Chromium is not installed: apt-get install -y chromium (Debian's package).")
    browser = playwright_instance.chromium.launch(
        executable_path=executable, args=CHROMIUM_ARGS, headless=True
    )
    yield browser
    browser.close()


def _page(browser: Browser, server: LiveServer, *, viewport: dict[str, int], javascript: bool = True) -> Page:
    context = browser.new_context(
        viewport=viewport, java_script_enabled=javascript, locale="en-GB", base_url=server.url
    )
    page = context.new_page()
    page.set_default_timeout(10_000)
    return page


@pytest.fixture
def phone(browser: Browser, server: LiveServer) -> Iterator[Page]:
    page = _page(browser, server, viewport=PHONE)
    yield page
    page.context.close()


@pytest.fixture
def phone_no_js(browser: Browser, server: LiveServer) -> Iterator[Page]:
    page = _page(browser, server, viewport=PHONE, javascript=False)
    yield page
    page.context.close()


@pytest.fixture
def desktop(browser: Browser, server: LiveServer) -> Iterator[Page]:
    page = _page(browser, server, viewport=DESKTOP)
    yield page
    page.context.close()


def log_in(page: Page, card: str = "100000017", password: str = "hanako-2026") -> None:
    page.goto("/login?lang=en")
    page.get_by_label("Card number").fill(card)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    # Wait for the answer: logged in (a Log out button) or refused (an alert).
    expect(page.get_by_role("button", name="Log out").or_(page.get_by_role("alert"))).to_be_visible()


def new_list(page: Page, name: str) -> None:
    """Make a book list from the lists page and wait until its own page is shown."""
    page.goto("/lists?lang=en")
    expect(page.get_by_role("heading", name="My lists", level=1)).to_be_visible()
    page.get_by_label("List name").fill(name)
    page.get_by_role("button", name="New list").click()
    expect(page.get_by_role("heading", name=name, exact=True)).to_be_visible()

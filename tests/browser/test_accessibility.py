"""axe-core (through axe-playwright-python) finds no violation on any page, in Japanese and in English.

Guests' pages, a patron's pages (the patron has loans, a hold, a list, an alert, a history entry and a
marathon, so the pages show their full content) and the counter's pages, on a 360 px phone.
"""

from __future__ import annotations

import re

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import DESKTOP, LiveServer, log_in, new_list

# The front end does not depend on the database: scripts/test.sh runs these once (on SQLite).
pytestmark = pytest.mark.frontend

GUEST_PAGES = [
    "/",
    "/login",
    "/search?q=猫",
    "/search?title=猫&material_type=book",
    "/bibs/3",
    "/cart",
    "/calendar",
    "/password/register",
    "/password/temporary",
    "/register",
    "/staff/login",
    "/no-such-page",
]
PATRON_PAGES = [
    "/mylibrary",
    "/loans",
    "/holds",
    "/cart",
    "/search?q=の",
    "/bibs/3",
    "/lists",
    "/favourites",
    "/history",
    "/marathon",
    "/alerts",
    "/account/password",
    "/account/emails",
    "/account/notices",
    "/account/calendar",
    "/card",
]
STAFF_PAGES = ["/staff", "/staff/calendar", "/staff/news", "/staff/registrations", "/staff/notices"]


def _violations(page: Page, paths: list[str]) -> list[str]:
    axe = Axe()
    found = []
    for lang in ("ja", "en"):
        for path in paths:
            page.goto(f"{path}{'&' if '?' in path else '?'}lang={lang}")
            page.wait_for_load_state("networkidle")
            for violation in axe.run(page).response["violations"]:
                targets = [node["target"] for node in violation["nodes"]][:3]
                found.append(f"{lang} {path}: {violation['id']} ({violation['impact']}) at {targets}")
    return found


def test_guest_pages_have_no_axe_violations(phone: Page) -> None:
    assert _violations(phone, GUEST_PAGES) == []


def test_patron_pages_have_no_axe_violations(phone: Page) -> None:
    page = phone
    log_in(page)
    # Content on every page: a list with an entry, a favourite, an alert, a marathon, a history entry.
    new_list(page, "読みたい本")
    page.goto("/search?q=こころ&lang=en")
    page.get_by_role("link", name="こころ", exact=True).click()
    page.get_by_role("button", name="Add to list").click()
    expect(page.get_by_role("status").filter(has_text="Added to the list.")).to_be_visible()
    page.get_by_role("button", name="Favourite").click()
    expect(page.get_by_role("button", name="Remove from favourites")).to_be_visible()
    page.goto("/search?q=猫&lang=en")
    page.get_by_role("button", name="Save as alert").click()
    expect(page.locator("#alerts")).to_contain_text("猫")
    page.goto("/marathon?lang=en")
    page.get_by_label("Goal (number of books)").fill("5")
    page.get_by_role("button", name="Set goal").click()
    expect(page.get_by_role("img", name=re.compile("of 5 books"))).to_be_visible()
    page.goto("/history?lang=en")
    page.get_by_label("Keep my reading history").check()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Your reading history is on")).to_be_visible()
    assert _violations(page, PATRON_PAGES) == []


def test_counter_pages_have_no_axe_violations(browser: Browser, server: LiveServer) -> None:
    page = browser.new_context(viewport=DESKTOP, base_url=server.url, locale="en-GB").new_page()
    try:
        page.goto("/staff/login?lang=en")
        page.get_by_label("Username").fill("counter")
        page.get_by_label("Password").fill("counter-2026")
        page.get_by_role("button", name="Log in").click()
        expect(page.locator("#counter-result")).to_be_attached()
        assert _violations(page, STAFF_PAGES) == []
    finally:
        page.context.close()

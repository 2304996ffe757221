"""Search → cart → log in → place holds → Holds page, in Chromium; phone with JS, and without JS."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import log_in


def _search(page: Page, text: str) -> None:
    page.get_by_label("Search the catalogue").fill(text)
    page.get_by_role("button", name="Search", exact=True).click()


def test_guest_searches_fills_cart_logs_in_and_places_holds(phone: Page) -> None:
    page = phone
    page.goto("/search?lang=ja")
    page.get_by_label("資料を探す").fill("猫で")
    page.get_by_role("button", name="資料検索", exact=True).click()
    results = page.locator("#results")
    expect(results).to_contain_text("吾輩は猫である")
    page.goto("/search?lang=en")
    _search(page, "pride")
    expect(page.locator("#results")).to_contain_text("Pride and Prejudice")
    page.locator("#results li", has_text="Pride and Prejudice").get_by_role(
        "button", name="Add to cart"
    ).click()
    expect(page.locator("#results li", has_text="Pride and Prejudice")).to_contain_text("In your cart")
    expect(page.locator("#cart-link")).to_have_text("Cart (1)")
    _search(page, "こころ")
    page.locator("#results li", has_text="こころ").first.get_by_role("button", name="Add to cart").click()
    expect(page.locator("#cart-link")).to_have_text("Cart (2)")
    page.get_by_role("link", name="Cart (2)").click()
    expect(page.locator("#cart li")).to_have_count(2)
    page.get_by_role("button", name="Reserve", exact=True).click()
    # A guest is sent to log in, then comes back to the cart with its contents.
    expect(page).to_have_url(re.compile(r"/login\?next=/cart"))
    page.get_by_label("Card number").fill("100000025")
    page.get_by_label("Password").fill("taro-2026")
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/cart$"))
    expect(page.locator("#cart li")).to_have_count(2)
    page.get_by_role("button", name="Reserve", exact=True).click()
    page.get_by_label("Pickup library").select_option(label="West Library")
    page.get_by_label("Contact method").select_option(label="Phone")
    page.get_by_role("button", name="Place holds").click()
    expect(page.locator("#place-results li")).to_have_count(2)
    expect(page.locator("#place-results")).to_contain_text("Reserved.")
    page.get_by_role("link", name="See all your holds").click()
    expect(page.locator("#holds li", has_text="Pride and Prejudice")).to_contain_text(
        "Place in queue (estimate)"
    )
    expect(page.locator("#cart-link")).to_have_text("Cart (0)")


def test_reserve_in_order_cancel_and_suspend(phone: Page) -> None:
    page = phone
    log_in(page, card="100000025", password="taro-2026")
    page.goto("/search?q=星の図書館&sort=newest&lang=en")
    for n in (3, 1, 2, 4):
        row = page.locator("#results li", has_text=f"星の図書館 第{n}巻")
        row.get_by_role("button", name="Add to cart").click()
        expect(row).to_contain_text("In your cart")
    page.goto("/cart")
    page.get_by_role("button", name="Reserve in order").click()
    expect(page.locator(".order-title")).to_have_text(
        ["星の図書館 第1巻", "星の図書館 第2巻", "星の図書館 第3巻", "星の図書館 第4巻"]
    )
    page.get_by_role("button", name="Move 星の図書館 第4巻 up").click()
    expect(page.locator(".order-title")).to_have_text(
        ["星の図書館 第1巻", "星の図書館 第2巻", "星の図書館 第4巻", "星の図書館 第3巻"]
    )
    page.get_by_label("Contact method").select_option(label="Phone")
    page.get_by_role("button", name="Place holds").click()
    expect(page.locator("#place-results")).to_contain_text("Reserved.")
    page.goto("/holds")
    expect(page.locator("#holds li", has_text="第4巻")).to_contain_text("volume 3 of your ordered holds")
    # Suspend one, then cancel another (the browser's confirm dialog is accepted).
    row = page.locator("#holds li", has_text="第1巻")
    row.get_by_label("Suspend until").fill("2099-12-31")
    row.get_by_role("button", name="Suspend").click()
    expect(page.locator("#holds li", has_text="第1巻")).to_contain_text("Please give a date")
    import datetime as dt

    soon = (dt.date.today() + dt.timedelta(days=20)).isoformat()
    row = page.locator("#holds li", has_text="第1巻")
    row.get_by_label("Suspend until").fill(soon)
    row.get_by_role("button", name="Suspend").click()
    expect(page.locator("#holds li", has_text="第1巻")).to_contain_text("Suspended until")
    # Change the pickup library: htmx loads the form into the card, the focus lands on its select.
    row = page.locator("#holds li", has_text="第3巻")
    row.get_by_role("link", name="Change pickup library or contact").click()
    expect(row.get_by_label("Pickup library")).to_be_focused()
    row.get_by_label("Pickup library").select_option(label="West Library")
    row.get_by_role("button", name="Change pickup library").click()
    row = page.locator("#holds li", has_text="第3巻")
    expect(row).to_contain_text("The pickup library was changed.")
    expect(row).to_contain_text("West Library")
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#holds li", has_text="第2巻").get_by_role("button", name=re.compile("^Cancel hold")).click()
    expect(page.locator("#holds li", has_text="第2巻")).to_contain_text("Cancelled")


def test_reference_title_cannot_be_reserved(desktop: Page) -> None:
    desktop.goto("/search?q=日本語大辞典&lang=en")
    expect(desktop.locator("#results")).to_contain_text("This title cannot be reserved")
    desktop.locator("#results").get_by_role("link", name=re.compile("日本語大辞典")).click()
    expect(desktop.get_by_text("This title cannot be reserved")).to_be_visible()
    expect(desktop.get_by_role("button", name="Add to cart")).to_have_count(0)


def test_expired_card_is_refused_with_its_reason(desktop: Page) -> None:
    log_in(desktop, card="100000041", password="jiro-2026")
    desktop.goto("/search?q=こころ&lang=en")
    desktop.locator("#results li", has_text="こころ").first.get_by_role("button", name="Add to cart").click()
    expect(desktop.locator("#cart-link")).to_have_text("Cart (1)")
    desktop.goto("/cart")
    desktop.get_by_role("button", name="Reserve", exact=True).click()
    expect(desktop.get_by_role("alert").first).to_contain_text("Your library card has expired")
    desktop.get_by_label("Contact method").select_option(label="Phone")
    desktop.get_by_role("button", name="Place holds").click()
    expect(desktop.locator("#place-results")).to_contain_text("Not reserved: Your library card has expired")


@pytest.mark.policy("fukuoka")
def test_overdue_patron_is_refused_where_the_library_says_so(desktop: Page) -> None:
    log_in(desktop, card="100000025", password="taro-2026")
    desktop.goto("/search?q=こころ&lang=en")
    desktop.locator("#results li", has_text="こころ").first.get_by_role("button", name="Add to cart").click()
    expect(desktop.locator("#cart-link")).to_have_text("Cart (1)")
    desktop.goto("/cart")
    desktop.get_by_role("button", name="Reserve", exact=True).click()
    expect(desktop.get_by_role("alert").first).to_contain_text("You have overdue items")


def test_core_path_without_javascript(phone_no_js: Page) -> None:
    page = phone_no_js
    log_in(page, card="100000025", password="taro-2026")
    page.goto("/search?lang=en")
    _search(page, "こころ")
    page.locator("#results li", has_text="こころ").first.get_by_role("button", name="Add to cart").click()
    expect(page.get_by_role("status").first).to_contain_text("Added to your cart.")
    expect(page.locator("#cart-link")).to_have_text("Cart (1)")
    page.get_by_role("link", name="Cart (1)").click()
    page.get_by_role("button", name="Reserve", exact=True).click()
    page.get_by_label("Contact method").select_option(label="Phone")
    page.get_by_role("button", name="Place holds").click()
    expect(page.locator("#place-results")).to_contain_text("Reserved.")
    page.goto("/holds")
    # Without JavaScript the change link opens a page of its own; its form posts and comes back.
    row = page.locator("#holds li", has_text="こころ")
    row.get_by_role("link", name="Change pickup library or contact").click()
    page.get_by_label("Pickup library").select_option(label="East Library")
    page.get_by_role("button", name="Change pickup library").click()
    expect(page).to_have_url(re.compile(r"/holds$"))
    expect(page.get_by_role("status").first).to_contain_text("The pickup library was changed.")
    expect(page.locator("#holds li", has_text="こころ")).to_contain_text("East Library")
    page.locator("#holds li", has_text="こころ").get_by_role(
        "button", name=re.compile("^Cancel hold")
    ).click()
    expect(page.get_by_text("You will lose your place in the queue")).to_be_visible()
    page.get_by_role("button", name="Cancel hold").click()
    expect(page.locator("#holds li", has_text="こころ")).to_contain_text("Cancelled")

"""The foundation's flows in a real Chromium: phone and desktop, JavaScript on and off."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.browser.conftest import log_in

CAT = "吾輩は猫である"


def test_log_in_and_log_out(desktop: Page) -> None:
    log_in(desktop)
    expect(desktop).to_have_url(re.compile(r"/mylibrary$"))
    expect(desktop.get_by_text("Logged in as Hanako Yamada")).to_be_visible()
    desktop.get_by_role("button", name="Log out").click()
    expect(desktop.get_by_role("link", name="Log in").first).to_be_visible()
    desktop.goto("/loans")
    expect(desktop).to_have_url(re.compile(r"/login\?next=/loans$"))


def test_wrong_password_gets_one_neutral_message(desktop: Page) -> None:
    log_in(desktop, password="wrong-one")
    expect(desktop.get_by_role("alert")).to_have_text("The card number or password is not correct.")
    expect(desktop.get_by_label("Card number")).to_have_value("100000017")


def test_forced_change_of_a_temporary_password(phone: Page) -> None:
    log_in(phone, card="100000033", password="temp-1234")
    expect(phone).to_have_url(re.compile(r"/account/password$"))
    phone.goto("/loans")
    expect(phone).to_have_url(re.compile(r"/account/password$"))
    phone.get_by_label("Current password").fill("temp-1234")
    phone.get_by_label("New password", exact=True).fill("misaki2026")
    phone.get_by_label("New password again").fill("misaki2026")
    phone.get_by_role("button", name="Change password").click()
    expect(phone).to_have_url(re.compile(r"/mylibrary$"))
    expect(phone.get_by_text("Your password has been changed.")).to_be_visible()
    phone.get_by_role("link", name="Loans").click()
    expect(phone).to_have_url(re.compile(r"/loans$"))


def test_renew_inline_on_a_phone_with_javascript(phone: Page) -> None:
    log_in(phone)
    phone.get_by_role("link", name="Loans").click()
    expect(phone.locator("#loans")).to_be_visible()
    phone.evaluate("window.__stayed = true")  # survives only if the page is not reloaded
    row = phone.locator("#loans li", has_text=CAT)
    row.get_by_role("button", name=re.compile("^Renew")).click()
    expect(phone.locator("#loans li", has_text=CAT)).to_contain_text("Renewed. New due date:")
    assert phone.evaluate("window.__stayed === true"), "htmx should swap the row, not reload the page"
    other = phone.locator("#loans li", has_text="銀河鉄道の夜")
    expect(other).to_contain_text("Another patron has reserved this item.")


def test_renew_inline_on_a_phone_without_javascript(phone_no_js: Page) -> None:
    page = phone_no_js
    log_in(page)
    page.goto("/loans")
    page.locator("#loans li", has_text=CAT).get_by_role("button", name=re.compile("^Renew")).click()
    expect(page).to_have_url(re.compile(r"/loans$"))
    expect(page.get_by_role("status").first).to_contain_text(f"Renewed “{CAT}”. New due date:")
    expect(page.locator("#loans li", has_text=CAT)).to_contain_text("Already renewed")


def test_renew_all(desktop: Page) -> None:
    log_in(desktop)
    desktop.goto("/loans")
    desktop.get_by_role("button", name="Renew all").click()
    expect(desktop.get_by_text("Renewed 1 of 3 loans.")).to_be_visible()
    expect(desktop.locator("#loans li", has_text=CAT)).to_contain_text("Renewed. New due date:")
    expect(desktop.locator("#loans li", has_text="Pride and Prejudice")).to_contain_text("Already renewed")


def test_renew_all_without_javascript(browser, server) -> None:  # type: ignore[no-untyped-def]
    context = browser.new_context(java_script_enabled=False, base_url=server.url, locale="en-GB")
    page = context.new_page()
    log_in(page)
    page.goto("/loans")
    page.get_by_role("button", name="Renew all").click()
    expect(page.get_by_text("Renewed 1 of 3 loans.")).to_be_visible()
    context.close()


def test_language_switch(phone: Page) -> None:
    phone.goto("/login?lang=en")
    expect(phone.get_by_role("heading", name="Log in")).to_be_visible()
    phone.get_by_role("link", name="日本語").click()
    expect(phone.get_by_role("heading", name="ログイン")).to_be_visible()
    expect(phone.locator("html")).to_have_attribute("lang", "ja")
    phone.goto("/")  # remembered
    expect(phone.get_by_role("link", name="マイページ").first).to_be_visible()
    phone.get_by_role("link", name="English").click()
    expect(phone.locator("html")).to_have_attribute("lang", "en")
    expect(phone.get_by_role("link", name="My Library").first).to_be_visible()


def test_font_switch(phone: Page) -> None:
    phone.goto("/login?lang=en")
    size = phone.evaluate("getComputedStyle(document.body).fontSize")
    phone.get_by_role("link", name="Large text").click()
    expect(phone.locator("html")).to_have_class("text-large")
    assert phone.evaluate("getComputedStyle(document.body).fontSize") != size
    phone.goto("/")
    expect(phone.locator("html")).to_have_class("text-large")
    phone.get_by_role("link", name="Normal text").click()
    expect(phone.locator("html")).to_have_class("text-normal")


def test_no_page_scrolls_sideways_at_360px(phone: Page) -> None:
    pages = ["/", "/login", "/search?q=の", "/no-such-page"]
    for lang in ("ja", "en"):
        for path in pages:
            phone.goto(f"{path}{'&' if '?' in path else '?'}lang={lang}")
            assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), (path, lang)
    log_in(phone)
    for lang in ("ja", "en"):
        for path in [
            "/mylibrary",
            "/loans",
            "/holds",
            "/account/password",
            "/card",
            "/cart",
            "/lists",
            "/favourites",
            "/history",
            "/marathon",
            "/alerts",
            "/account/calendar",
            "/calendar",
            "/login?text=large",
        ]:
            phone.goto(f"{path}{'&' if '?' in path else '?'}lang={lang}&text=large")
            assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), (path, lang)


def test_keyboard_users_can_skip_to_content_and_see_focus(desktop: Page) -> None:
    desktop.goto("/login?lang=en")
    desktop.keyboard.press("Tab")
    skip = desktop.get_by_role("link", name="Skip to main content")
    expect(skip).to_be_focused()
    outline = skip.evaluate("e => getComputedStyle(e).outlineStyle")
    assert outline != "none"


def test_no_console_errors_and_no_csp_violations(desktop: Page) -> None:
    errors: list[str] = []
    desktop.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    log_in(desktop)
    desktop.goto("/loans")
    desktop.locator("#loans li", has_text=CAT).get_by_role("button", name=re.compile("^Renew")).click()
    expect(desktop.locator("#loans li", has_text=CAT)).to_contain_text("Renewed")
    assert not errors, errors

"""Personal features in a real Chromium: lists with CSV, favourites, marathon, history, alerts, dashboard."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from pathlib import Path

from playwright.sync_api import Browser, Page, expect
from sqlalchemy import text

from tests.browser.conftest import DESKTOP, LiveServer, log_in, new_list
from tests.support import sync_engine


def _on_shelf_barcode(server: LiveServer, title: str) -> str:
    with sync_engine(server.env["DATABASE_URL"]).connect() as con:
        barcode = con.execute(
            text(
                "SELECT i.barcode FROM items i JOIN bibs b ON b.id = i.bib_id "
                "WHERE b.title = :t AND i.status = 'on_shelf'"
            ),
            {"t": title},
        ).scalar()
    return str(barcode)


def test_add_to_a_list_from_the_title_page_and_download_csv(phone: Page) -> None:
    page = phone
    log_in(page)
    new_list(page, '読みたい本 =HYPERLINK("x")')
    page.goto("/search?q=こころ&lang=en")
    page.get_by_role("link", name="こころ", exact=True).click()
    page.get_by_label("Memo").fill("=1+1 再読したい")
    page.get_by_role("button", name="Add to list").click()
    expect(page.get_by_role("status").filter(has_text="Added to the list.")).to_be_visible()
    page.goto("/lists?lang=en")
    page.get_by_role("link", name=re.compile("読みたい本")).click()
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download CSV").click()
    raw = Path(download_info.value.path()).read_bytes()
    assert raw.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0] == ["title", "author", "publisher", "year", "isbn", "memo", "added"]
    assert rows[1][0] == "こころ" and rows[1][5] == "'=1+1 再読したい"  # a formula made harmless


def test_add_to_a_list_from_the_search_results(phone: Page) -> None:
    page = phone
    log_in(page)
    new_list(page, "夏休み")
    page.goto("/search?q=こころ&lang=en")
    hit = page.locator("li.hit", has=page.get_by_role("link", name="こころ", exact=True))
    hit.get_by_role("link", name="Add こころ to the list").click()
    hit.get_by_label("Memo").fill("読書感想文")
    hit.get_by_role("button", name="Add to list").click()
    expect(hit.get_by_role("status")).to_have_text("Added to the list.")
    expect(page).to_have_url(re.compile(r"/search\?q="))  # still on the results


def test_add_to_a_list_from_the_search_results_without_javascript(phone_no_js: Page) -> None:
    page = phone_no_js
    log_in(page)
    new_list(page, "夏休み")
    page.goto("/search?q=こころ&lang=en")
    hit = page.locator("li.hit", has=page.get_by_role("link", name="こころ", exact=True))
    hit.get_by_role("link", name="Add こころ to the list").click()
    page.get_by_role("button", name="Add to list").click()
    expect(page).to_have_url(re.compile(r"/search\?q="))
    expect(page.get_by_text("Added to the list.")).to_be_visible()


def test_favourite_from_the_results_and_the_favourites_page(phone: Page) -> None:
    page = phone
    log_in(page)
    page.goto("/search?q=こころ&lang=en")
    hit = page.locator("li.hit", has=page.get_by_role("link", name="こころ", exact=True))
    # exact names: "Favourite" is also part of "Remove from favourites"; and each POST is awaited
    # before navigating away, or the next page can be read before the toggle is written.
    with page.expect_response(lambda r: "/favourites/" in r.url and r.request.method == "POST"):
        hit.get_by_role("button", name="Favourite", exact=True).click()
    expect(hit.get_by_role("button", name="Remove from favourites", exact=True)).to_be_visible()
    page.goto("/favourites?lang=en")
    expect(page.get_by_role("link", name="こころ", exact=True)).to_be_visible()
    page.goto("/search?q=こころ&lang=en")
    with page.expect_response(lambda r: "/favourites/" in r.url and r.request.method == "POST"):
        hit.get_by_role("button", name="Remove from favourites", exact=True).click()
    expect(hit.get_by_role("button", name="Favourite", exact=True)).to_be_visible()
    page.goto("/favourites?lang=en")
    expect(page.get_by_role("link", name="こころ", exact=True)).to_have_count(0)


def test_reading_marathon_chart_and_bad_goals(phone: Page) -> None:
    page = phone
    log_in(page)
    page.goto("/marathon?lang=en")
    page.get_by_label("Goal (number of books)").fill("0")
    page.get_by_role("button", name="Set goal").click()
    expect(page.get_by_role("alert")).to_contain_text("from 1 to")
    start = (dt.date.today() - dt.timedelta(days=365)).isoformat()
    page.get_by_label("Goal (number of books)").fill("５")  # full-width digits are fine
    page.get_by_label("From").fill(start)
    page.get_by_role("button", name="Set goal").click()
    # Hanako's three loans of the past weeks count; the chart's text equivalent says so.
    chart = page.get_by_role("img", name="3 of 5 books (60%)")
    expect(chart).to_be_visible()


def test_reading_history_opt_in_check_out_and_opt_out(
    browser: Browser, phone: Page, server: LiveServer
) -> None:
    page = phone
    log_in(page)
    page.goto("/history?lang=en")
    expect(page.get_by_label("Keep my reading history")).not_to_be_checked()
    page.get_by_label("Keep my reading history").check()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Your reading history is on")).to_be_visible()
    # The counter checks a book out to Hanako: it lands in her history.
    staff = browser.new_context(viewport=DESKTOP, base_url=server.url, locale="en-GB").new_page()
    try:
        staff.goto("/staff/login?lang=en")
        staff.get_by_label("Username").fill("counter")
        staff.get_by_label("Password").fill("counter-2026")
        staff.get_by_role("button", name="Log in").click()
        staff.get_by_label("Card number").first.fill("100000017")
        staff.locator("#co-barcode").fill(_on_shelf_barcode(server, "雪国"))
        staff.get_by_role("button", name="Check out").click()
        expect(staff.locator("#counter-result")).to_contain_text("Checked out")
    finally:
        staff.context.close()
    page.goto("/history?lang=en")
    expect(page.locator("#history")).to_contain_text("雪国")
    page.get_by_label("New shelf").fill("川端康成")
    page.get_by_role("button", name="Create shelf").click()
    expect(page).to_have_url(re.compile(r"/history\?shelf=\d+"))  # the POST is done before we move on
    page.goto("/history?lang=en")
    page.locator("#history li", has_text="雪国").get_by_label("Shelf").select_option(label="川端康成")
    page.get_by_role("button", name="Move 雪国", exact=True).click()
    # The move's page is back (the shelf now counts the title) before we follow its link.
    page.get_by_role("link", name="川端康成 (1)").click()
    expect(page).to_have_url(re.compile(r"/history\?shelf=\d+"))
    expect(page.locator("#history")).to_contain_text("雪国")
    # Opting out: told first that it deletes the history, then it is gone.
    page.get_by_label("Keep my reading history").uncheck()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert")).to_contain_text("deletes the 1 title")
    page.get_by_role("button", name="Delete my history and turn it off").click()
    expect(page.get_by_text("Your reading history is off and has been deleted.")).to_be_visible()
    expect(page.locator("#history")).to_have_count(0)


def test_save_a_search_as_an_alert(phone: Page) -> None:
    page = phone
    log_in(page)
    page.goto("/search?q=宇宙&lang=en")
    page.get_by_role("button", name="Save as alert").click()
    expect(page.get_by_role("heading", name="Alerts", level=1)).to_be_visible()
    expect(page.locator("#alerts")).to_contain_text("宇宙")
    page.goto("/search?q=宇宙&lang=en")
    page.get_by_role("button", name="Save as alert").click()
    expect(page.get_by_role("alert")).to_contain_text("already have an alert")


def test_dashboard_on_a_phone_puts_the_urgent_things_first(phone: Page) -> None:
    page = phone
    log_in(page, "100000025", "taro-2026")
    page.goto("/mylibrary?lang=en")
    dashboard = page.locator("#dashboard")
    expect(dashboard).to_be_visible()
    overdue = dashboard.get_by_text(re.compile("overdue. Please return"))
    expect(overdue).to_be_visible()
    calendar = dashboard.get_by_role("table")
    expect(calendar).to_be_visible()
    overdue_box, calendar_box = overdue.bounding_box(), calendar.bounding_box()
    assert overdue_box and calendar_box and overdue_box["y"] < calendar_box["y"]
    expect(dashboard.locator("#events")).to_contain_text("Story time")
    expect(dashboard).to_contain_text("Closed over the New Year")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    heading = page.locator("#calendar .pager strong")
    this_month = heading.inner_text()
    page.get_by_role("link", name="Next month").click()
    expect(heading).not_to_have_text(this_month)
    expect(page.locator("#dashboard table")).to_be_visible()


def test_dashboard_without_javascript_links_to_the_calendar(phone_no_js: Page) -> None:
    page = phone_no_js
    log_in(page)
    page.goto("/mylibrary?lang=en")
    page.get_by_role("link", name="Closed days and events").click()
    expect(page.get_by_role("table")).to_be_visible()
    page.get_by_role("link", name="Next month").click()
    expect(page).to_have_url(re.compile(r"/calendar\?month=\d{4}-\d{2}"))

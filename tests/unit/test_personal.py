"""Reading history and shelves, alerts with the biweekly digest (real SMTP), news, events, calendar feed."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from pathlib import Path

import pytest
from icalendar import Calendar
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app import clock
from app.db import make_engine, make_sessionmaker, session_scope
from app.models import (
    Alert,
    Bib,
    Branch,
    Email,
    HistoryEntry,
    HistoryShelf,
    Hold,
    Item,
    LibraryEvent,
    News,
    Notice,
    Patron,
    StaffUser,
)
from app.policy import load_policy
from app.services import alerts, catalog, circulation, history
from app.tasks.daily import run_day
from app.tasks.mailer import deliver_pending
from tests.unit.conftest import csrf_from, login, make_settings

DEFAULT = load_policy("default")


async def _patron(db: AsyncSession, card: str) -> Patron:
    patron = await db.scalar(select(Patron).where(Patron.card_number == card))
    assert patron is not None
    return patron


async def _checkout(db: AsyncSession, card: str, title: str, today: dt.date) -> None:
    central = await db.scalar(select(Branch.id).where(Branch.code == "central"))
    staff = await db.scalar(select(StaffUser.id))
    barcode = await db.scalar(
        select(Item.barcode).join(Bib).where(Bib.title == title, Item.status == "on_shelf").limit(1)
    )
    assert central and staff and barcode, title
    await circulation.checkout(
        db, card=card, barcode=barcode, branch_id=central, staff_id=staff, today=today, policy=DEFAULT
    )


# ---------------------------------------------------------------- reading history


async def test_history_is_off_by_default_and_kept_only_while_on(db: AsyncSession) -> None:
    hanako = await _patron(db, "100000017")
    assert hanako.keep_history is False
    today = clock.today()
    await _checkout(db, "100000017", "こころ", today)
    assert await history.count(db, hanako.id) == 0  # off: nothing is recorded
    await history.set_kept(db, hanako.id, True)
    await _checkout(db, "100000017", "雪国", today)
    rows = await history.entries(db, hanako.id)
    assert [r.title for r in rows] == ["雪国"] and rows[0].times == 1
    shelf = await history.create_shelf(db, hanako.id, "純文学")
    await history.move(db, hanako.id, rows[0].id, shelf)
    assert [r.shelf_name for r in await history.entries(db, hanako.id, shelf)] == ["純文学"]
    assert await history.entries(db, hanako.id, history.UNSORTED) == []
    # Opting out deletes the history and the shelves.
    assert await history.set_kept(db, hanako.id, False) == 1
    assert await db.scalar(select(func.count()).select_from(HistoryEntry)) == 0
    assert await db.scalar(select(func.count()).select_from(HistoryShelf)) == 0


async def test_history_pages_confirm_before_deleting_and_refuse_other_ids(
    client: AsyncTestClient, db: AsyncSession
) -> None:
    hanako, taro = await _patron(db, "100000017"), await _patron(db, "100000025")
    bib = await db.scalar(select(Bib.id).where(Bib.title == "こころ"))
    assert bib
    await history.set_kept(db, taro.id, True)
    other_shelf = await history.create_shelf(db, taro.id, "taro's")
    db.add(
        HistoryEntry(
            patron_id=taro.id, bib_id=bib, first_loaned_on=clock.today(), last_loaned_on=clock.today()
        )
    )
    await db.commit()
    taro_entry = await db.scalar(select(HistoryEntry.id).where(HistoryEntry.patron_id == taro.id))
    await login(client)
    page = await client.get("/history?lang=en")
    assert "Keep my reading history" in page.text and 'id="history"' not in page.text
    csrf = csrf_from(page.text)
    await client.post("/history/settings", data={"_csrf_token": csrf, "keep": "yes"})
    db.add(
        HistoryEntry(
            patron_id=hanako.id, bib_id=bib, first_loaned_on=clock.today(), last_loaned_on=clock.today()
        )
    )
    await db.commit()
    # Bad input: an empty, a 51-character and a script-bearing shelf name.
    assert (await client.post("/history/shelves", data={"_csrf_token": csrf, "name": " "})).status_code == 400
    long = await client.post("/history/shelves", data={"_csrf_token": csrf, "name": "棚" * 51})
    assert long.status_code == 400 and "at most 50 characters" in long.text
    await client.post("/history/shelves", data={"_csrf_token": csrf, "name": "<script>alert(1)</script>"})
    shown = await client.get("/history")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in shown.text and "<script>alert(1)" not in shown.text
    # Another patron's shelf and entry: 404, nothing changed.
    entry = await db.scalar(select(HistoryEntry.id).where(HistoryEntry.patron_id == hanako.id))
    assert (await client.get(f"/history?shelf={other_shelf}")).status_code == 404
    moved = await client.post(
        f"/history/entries/{entry}/shelf", data={"_csrf_token": csrf, "shelf_id": other_shelf}
    )
    assert moved.status_code == 404
    gone = await client.post(f"/history/entries/{taro_entry}/delete", data={"_csrf_token": csrf})
    assert gone.status_code == 404
    assert (
        await client.post(f"/history/shelves/{other_shelf}/delete", data={"_csrf_token": csrf})
    ).status_code == 404
    # CSV like the lists: BOM, header, the title.
    download = await client.get("/history/csv")
    assert download.content.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(download.content.decode("utf-8-sig"))))
    assert rows[0][:2] == ["title", "author"] and rows[1][0] == "こころ"
    # Turning it off first asks, and deletes nothing until confirmed.
    ask = await client.post("/history/settings", data={"_csrf_token": csrf})
    assert "deletes the 1 title" in ask.text and "cannot be undone" in ask.text
    assert await history.count(db, hanako.id) == 1
    await client.post("/history/settings", data={"_csrf_token": csrf, "confirm": "yes"})
    assert await history.count(db, hanako.id) == 0
    assert await history.count(db, taro.id) == 1  # the other patron's history is untouched
    assert not await history.is_kept(db, hanako.id)


# ---------------------------------------------------------------- alerts


async def test_save_as_alert_from_a_search_and_bad_input(client: AsyncTestClient, db: AsyncSession) -> None:
    hanako = await _patron(db, "100000017")
    await login(client)
    results = await client.get("/search?q=%E5%AE%87%E5%AE%99&lang=en")  # 宇宙
    assert "Save as alert" in results.text
    csrf = csrf_from(results.text)
    search = re.search(r'name="search" value="([^"]*)"', results.text)
    assert search
    saved = await client.post(
        "/alerts", data={"_csrf_token": csrf, "search": search.group(1).replace("&amp;", "&")}
    )
    assert saved.status_code in (200, 303)
    assert (await db.scalars(select(Alert.name).where(Alert.patron_id == hanako.id))).all() == ["宇宙"]
    # The same search twice, an empty search, a malformed one: a message, nothing saved.
    again = await client.post("/alerts", data={"_csrf_token": csrf, "search": "q=宇宙"})
    assert again.status_code == 400 and "already have an alert" in again.text
    empty = await client.post("/alerts", data={"_csrf_token": csrf, "search": "q=++"})
    assert empty.status_code == 400 and "Search for something first" in empty.text
    bad = await client.post("/alerts", data={"_csrf_token": csrf, "search": "q=x&sort=evil"})
    assert bad.status_code == 400
    for n in range(alerts.MAX_ALERTS - 1):
        await alerts.save(db, hanako.id, catalog.SearchParams(q=f"word{n}"))
    eleventh = await client.post("/alerts", data={"_csrf_token": csrf, "search": "q=eleventh"})
    assert eleventh.status_code == 400 and "at most 10 alerts" in eleventh.text
    assert await db.scalar(select(func.count()).where(Alert.patron_id == hanako.id)) == alerts.MAX_ALERTS
    # A name with markup is shown as text; another patron's alert is a 404.
    first = await db.scalar(select(Alert.id).where(Alert.patron_id == hanako.id).order_by(Alert.id))
    await client.post(f"/alerts/{first}", data={"_csrf_token": csrf, "name": "{{ 7*7 }}<script>x</script>"})
    page = await client.get("/alerts")
    assert "{{ 7*7 }}&lt;script&gt;" in page.text and ">49<" not in page.text
    taro = await _patron(db, "100000025")
    theirs = await alerts.save(db, taro.id, catalog.SearchParams(q="猫"))
    assert (await client.post(f"/alerts/{theirs}/delete", data={"_csrf_token": csrf})).status_code == 404
    assert (
        await client.post(f"/alerts/{theirs}", data={"_csrf_token": csrf, "name": "x"})
    ).status_code == 404
    assert await db.get(Alert, theirs) is not None


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        ("2026-12-01", False),  # 1st Tuesday
        ("2026-12-08", True),  # 2nd Tuesday
        ("2026-12-15", False),  # 3rd
        ("2026-12-22", True),  # 4th
        ("2026-12-29", False),  # 5th
        ("2026-12-09", False),  # a Wednesday in the 2nd week
        ("2027-02-09", True),
        ("2027-02-23", True),
        ("2026-09-08", True),
        ("2026-09-22", True),
    ],
)
def test_digest_runs_on_the_2nd_and_4th_tuesday(day: str, expected: bool) -> None:
    assert alerts.is_digest_day(dt.date.fromisoformat(day)) is expected


def _next_digest_day(start: dt.date) -> dt.date:
    day = start
    while not alerts.is_digest_day(day):
        day += dt.timedelta(days=1)
    return day


async def _add_bib(
    db: AsyncSession, title: str, *, year: int, copies: list[dt.date], material: str = "book"
) -> int:
    central = await db.scalar(select(Branch.id).where(Branch.code == "central"))
    assert central
    bib = Bib(title=title, authors="著者", pub_year=year, material_type=material)
    db.add(bib)
    await db.flush()
    for n, since in enumerate(copies):
        db.add(Item(barcode=f"T{bib.id}-{n}", bib_id=bib.id, branch_id=central, available_since=since))
    await db.commit()
    await catalog.reindex_bibs(db, [bib.id])
    await db.commit()
    return bib.id


async def test_digest_windows_serials_and_one_mail_per_patron(
    db: AsyncSession, database_url: str, namespace: str, tmp_path: Path, smtp
) -> None:  # type: ignore[no-untyped-def]
    controller, inbox = smtp
    day = _next_digest_day(clock.today() + dt.timedelta(days=1))
    fresh = day - dt.timedelta(days=3)
    await _add_bib(db, "宇宙の図鑑", year=day.year, copies=[fresh])  # in
    await _add_bib(
        db, "宇宙の写真集", year=day.year - 1, copies=[day - dt.timedelta(days=13)]
    )  # in (13 days)
    await _add_bib(db, "宇宙の雑誌", year=day.year, copies=[fresh], material="magazine")  # a serial: out
    await _add_bib(db, "宇宙年鑑", year=day.year, copies=[fresh], material="serial")  # out
    await _add_bib(db, "宇宙の歴史", year=day.year - 2, copies=[fresh])  # published too long ago
    await _add_bib(db, "宇宙と星", year=day.year, copies=[day - dt.timedelta(days=100), fresh])  # not new
    await _add_bib(db, "宇宙への旅", year=day.year, copies=[day - dt.timedelta(days=14)])  # 14 days: out
    await _add_bib(db, "猫の手帖", year=day.year, copies=[fresh])  # new, matches the cat alert
    hanako, taro = await _patron(db, "100000017"), await _patron(db, "100000025")
    await db.execute(update(Patron).where(Patron.id == hanako.id).values(notify_arrivals=True))
    await alerts.save(db, hanako.id, catalog.SearchParams(q="宇宙"), "宇宙の本")
    await alerts.save(db, hanako.id, catalog.SearchParams(q="猫", material_type="book"), "猫")
    await alerts.save(db, hanako.id, catalog.SearchParams(q="存在しない語"), "none")
    # Taro has alerts but did not opt in; Jiro opted in but has no confirmed address.
    await alerts.save(db, taro.id, catalog.SearchParams(q="宇宙"))
    jiro = await _patron(db, "100000041")
    await db.execute(update(Patron).where(Patron.id == jiro.id).values(notify_arrivals=True))
    db.add(Email(patron_id=jiro.id, address="jiro@example.jp"))
    await alerts.save(db, jiro.id, catalog.SearchParams(q="宇宙"))
    await db.commit()

    settings = make_settings(
        database_url, namespace, tmp_path, SMTP_HOST="127.0.0.1", SMTP_PORT=str(controller.port)
    )
    engine = make_engine(database_url)
    maker = make_sessionmaker(engine)
    try:
        # The day before: not a digest day, nothing queued.
        async with maker() as session:
            await run_day(session, day - dt.timedelta(days=1), DEFAULT)
        assert await db.scalar(select(func.count()).where(Notice.type == "new_arrivals")) == 0
        for _ in range(2):  # run twice for the day: still one mail
            async with maker() as session:
                counts = await run_day(session, day, DEFAULT)
            await deliver_pending(maker, settings, now=dt.datetime.combine(day, dt.time(12), tzinfo=clock.TZ))
        assert counts["new_arrivals"] == 0  # the second run adds nothing
        digests = [(to, m) for to, m in inbox.messages if "新着" in m["Subject"]]
        assert len(digests) == 1 and digests[0][0] == ["hanako@example.jp"]
        body = digests[0][1].get_body(("plain",)).get_content()
        assert "宇宙の図鑑" in body and "宇宙の写真集" in body and "猫の手帖" in body
        for out in ("宇宙の雑誌", "宇宙年鑑", "宇宙の歴史", "宇宙と星", "宇宙への旅", "■ none"):
            assert out not in body, out
        assert body.index("■ 宇宙の本") < body.index("■ 猫")
        link = re.search(r"/alerts/unsubscribe\?t=(\S+)", body)
        assert link
    finally:
        await engine.dispose()

    # A digest day with no new arrivals at all: no mail.
    async with session_scope(database_url) as session:
        quiet = _next_digest_day(day + dt.timedelta(days=60))
        result = await alerts.run_digest(session, quiet, secret="s", base_url="http://x")
        assert result["arrivals"] == 0 and result["new_arrivals"] == 0


async def test_unsubscribe_link_changes_nothing_on_get_and_stops_mail_on_post(
    client: AsyncTestClient, db: AsyncSession, settings
) -> None:  # type: ignore[no-untyped-def]
    hanako = await _patron(db, "100000017")
    await db.execute(update(Patron).where(Patron.id == hanako.id).values(notify_arrivals=True))
    await db.commit()
    token = alerts.unsubscribe_token(settings.secret_key, hanako.id)
    page = await client.get(f"/alerts/unsubscribe?t={token}&lang=en")
    assert page.status_code == 200 and "Stop new-arrival mail" in page.text
    await db.refresh(hanako)
    assert hanako.notify_arrivals is True  # a mail scanner following the link changes nothing
    forged = await client.get(f"/alerts/unsubscribe?t={hanako.id}.{'0' * 32}")
    assert forged.status_code == 404
    done = await client.post("/alerts/unsubscribe", data={"_csrf_token": csrf_from(page.text), "t": token})
    assert done.status_code == 200 and "will not receive new-arrival mail" in done.text
    await db.refresh(hanako)
    assert hanako.notify_arrivals is False
    missing_csrf = await client.post("/alerts/unsubscribe", data={"t": token})
    assert missing_csrf.status_code == 403


# ---------------------------------------------------------------- news, events, dashboard


async def _staff_login(client: AsyncTestClient) -> str:
    page = await client.get("/staff/login")
    await client.post(
        "/staff/login",
        data={"_csrf_token": csrf_from(page.text), "username": "counter", "password": "counter-2026"},
    )
    return csrf_from((await client.get("/staff/news")).text)


async def test_news_is_shown_and_mailed_to_subscribers_only(
    client: AsyncTestClient, db: AsyncSession, database_url: str, namespace: str, tmp_path: Path, smtp
) -> None:  # type: ignore[no-untyped-def]
    controller, inbox = smtp
    hanako = await _patron(db, "100000017")
    await db.execute(update(Patron).where(Patron.id == hanako.id).values(notify_news=True))
    await db.commit()
    csrf = await _staff_login(client)
    before = await db.scalar(select(func.count()).select_from(News))
    bad = await client.post("/staff/news", data={"_csrf_token": csrf, "title_ja": "x" * 101})
    assert bad.status_code == 400 and await db.scalar(select(func.count()).select_from(News)) == before
    no_csrf = await client.post("/staff/news", data={"title_ja": "no token"})
    assert no_csrf.status_code == 403 and await db.scalar(select(func.count()).select_from(News)) == before
    posted = await client.post(
        "/staff/news",
        data={
            "_csrf_token": csrf,
            "title_ja": "臨時休館のお知らせ",
            "title_en": "Temporary closure",
            "body_ja": "12月1日は設備点検のため休館します。",
            "urgent": "yes",
            "mail": "yes",
        },
    )
    assert posted.status_code in (200, 303)
    settings = make_settings(
        database_url, namespace, tmp_path, SMTP_HOST="127.0.0.1", SMTP_PORT=str(controller.port)
    )
    engine = make_engine(database_url)
    try:
        await deliver_pending(make_sessionmaker(engine), settings, now=clock.now())
        await deliver_pending(make_sessionmaker(engine), settings, now=clock.now())  # no second mail
    finally:
        await engine.dispose()
    mailed = [to for to, m in inbox.messages if "お知らせ" in m["Subject"]]
    assert mailed == [["hanako@example.jp"]]  # the only patron who asked for news, with a confirmed address
    # The patron sees it first on the dashboard.
    await client.post("/staff/logout", data={"_csrf_token": csrf})
    await login(client)
    dash = await client.get("/mylibrary")
    assert 'id="dashboard"' in dash.text
    assert dash.text.index("臨時休館のお知らせ") < dash.text.index('id="dash-loans"')


async def test_calendar_lists_the_events_just_after_the_month_at_its_end(
    client: AsyncTestClient, db: AsyncSession
) -> None:
    """On 28 January, story time on 6 February is still listed (the next 14 days); 20 February is not."""
    db.add(
        LibraryEvent(branch_id=None, day=dt.date(2027, 2, 6), title_ja="折り紙教室", title_en="Origami class")
    )
    db.add(
        LibraryEvent(branch_id=None, day=dt.date(2027, 2, 20), title_ja="遠い催し", title_en="Far-off fair")
    )
    await db.commit()
    clock.set_today(dt.date(2027, 1, 28))
    try:
        this_month = (await client.get("/calendar?lang=en")).text
        assert "January 2027" in this_month
        events = this_month.split('id="events"', 1)[1]
        assert "Origami class" in events and "Far-off fair" not in events
        assert "2027-02-20" not in this_month
        # Another month lists only its own events; February's grid marks both.
        assert 'id="events"' not in (await client.get("/calendar?month=2027-03&lang=en")).text
        february = (await client.get("/calendar?month=2027-02&lang=en")).text
        assert "Origami class" in february and "Far-off fair" in february
    finally:
        clock.set_today(None)


async def test_dashboard_overdue_first_calendar_and_cancelled_holds(
    client: AsyncTestClient, db: AsyncSession
) -> None:
    taro = await _patron(db, "100000025")
    today = clock.today()
    central = await db.scalar(select(Branch).where(Branch.code == "central"))
    assert central
    db.add(LibraryEvent(branch_id=central.id, day=today, title_ja="おはなし会", title_en="Story time"))
    bib = await db.scalar(select(Bib.id).where(Bib.title == "こころ"))
    db.add(
        Hold(
            patron_id=taro.id,
            bib_id=bib,
            status="cancelled",
            placed_at=dt.datetime.combine(today, dt.time()) - dt.timedelta(days=3),
            cancelled_at=dt.datetime.combine(today, dt.time()) - dt.timedelta(days=1),
            cancel_reason="expired",
            pickup_branch_id=central.id,
        )
    )
    await db.commit()
    await _checkout(db, "100000017", "雪国", today)  # (Hanako's) - unrelated, shows scoping
    await login(client, "100000025", "taro-2026")
    page = (await client.get("/mylibrary?lang=en")).text
    assert "is overdue" in page
    assert "Recently cancelled holds" in page and "こころ" in page
    assert "雪国" not in page
    # The calendar comes lazily (htmx) from /calendar, and is one link away without JavaScript.
    assert 'hx-get="/calendar"' in page and 'href="/calendar"' in page
    calendar = (await client.get("/calendar?lang=en")).text
    assert "Story time" in calendar and "<table" in calendar
    assert central.closed_weekdays == "1" and "Closed" in calendar  # the demo's central shuts on Mondays
    fragment = await client.get("/calendar", headers={"HX-Request": "true"})
    assert fragment.text.lstrip().startswith("<section") and "<html" not in fragment.text
    # Other months and bad month values.
    assert "January 2027" in (await client.get("/calendar?month=2027-01&lang=en")).text
    assert (
        "January 2027" in (await client.get("/calendar?month=%EF%BC%92%EF%BC%90%EF%BC%92%EF%BC%97-01")).text
    )
    for bad in ("garbage", "2027-13", "1999-01", "9" * 400):
        assert (await client.get(f"/calendar?month={bad}")).status_code == 200


async def test_calendar_feed_secret_address_and_reset(client: AsyncTestClient, db: AsyncSession) -> None:
    await login(client)
    page = await client.get("/account/calendar?lang=en")
    assert "/calendar/" not in page.text  # no address until asked for (GET changes nothing)
    await client.post("/account/calendar", data={"_csrf_token": csrf_from(page.text)})
    page = await client.get("/account/calendar")
    url = re.search(r'value="https?://[^"]*(/calendar/[^"]+\.ics)"', page.text)
    assert url
    feed_response = await client.get(url.group(1))
    assert feed_response.status_code == 200 and feed_response.headers["content-type"].startswith(
        "text/calendar"
    )
    calendar = Calendar.from_ical(feed_response.content)
    events = [c for c in calendar.walk("VEVENT")]
    assert events and any("吾輩は猫である" in str(e.get("description")) for e in events)
    await client.post("/account/calendar", data={"_csrf_token": csrf_from(page.text)})
    assert (await client.get(url.group(1))).status_code == 404  # the old address stops working
    assert (await client.get("/calendar/not-a-token.ics")).status_code == 404

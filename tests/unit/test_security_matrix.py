"""The ownership matrix and the CSRF/method checks, driven by the app's own route table.

Every route is found in `app.routes`, so a new route is covered (or makes this test fail until
someone says what its ids are) without anyone remembering to add it here:

- a route whose path takes the id of a patron's thing is called by another patron with the
  owner's ids, by every method it answers: 404, and no row of any patron-owned table changes;
- every staff route refuses a logged-in patron (403) and sends a guest to log in;
- every POST refuses a request without a CSRF token (403) and changes nothing; every POST-only
  path refuses GET (405).

The counts go to SECURITY_FIGURES for `python -m bench security`.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Bib, BookListEntry, Branch, Email, Hold, Loan, Patron
from app.services import alerts, catalog, history, lists
from tests.unit.conftest import csrf_from, login

HANAKO = ("100000017", "hanako-2026")  # the owner
TARO = ("100000025", "taro-2026")  # the other patron
OWNED_TABLES = (
    "loans",
    "holds",
    "book_lists",
    "book_list_entries",
    "favourites",
    "alerts",
    "emails",
    "reading_history",
    "history_shelves",
    "marathons",
    "notices",
    "patrons",
)
# Path parameter → the kind of thing it names. Parameters named here are patron-owned; the rest
# are public (bib_id) or staff-only (anything under /staff). An unknown parameter fails the test.
OWNED_PARAMS = {"loan_id", "hold_id", "list_id", "entry_id", "shelf_id", "alert_id", "email_id"}
PUBLIC_PARAMS = {"bib_id", "token", "file_path"}
PARAM = re.compile(r"{(\w+):(\w+)}")

SECURITY_FIGURES: dict[str, int] = {}


def _routes(app: Litestar) -> list[tuple[str, str, str]]:
    """(path, method, handler name) for every handler, OPTIONS and HEAD left out."""
    out = []
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            for method in sorted(getattr(handler, "http_methods", ())):
                if method not in ("OPTIONS", "HEAD"):
                    out.append((route.path, method, handler.name or ""))
    return out


async def _snapshot(db: AsyncSession) -> dict[str, list[tuple[Any, ...]]]:
    await db.rollback()  # a fresh read, not the session's earlier snapshot
    out = {}
    for table in OWNED_TABLES:
        rows = (await db.execute(text(f"SELECT * FROM {table} ORDER BY 1"))).all()
        out[table] = [tuple(row) for row in rows]
    return out


async def _owners_things(db: AsyncSession) -> dict[str, int]:
    """One of each patron-owned thing belonging to Hanako; returns the ids by path parameter."""
    hanako = await db.scalar(select(Patron.id).where(Patron.card_number == HANAKO[0]))
    assert hanako is not None
    list_id = await lists.create(db, hanako, "Hanako's list")
    bib_id = await db.scalar(select(Bib.id).order_by(Bib.id).limit(1))
    assert bib_id is not None
    await lists.add_entry(db, hanako, list_id, bib_id)
    entry = await db.scalar(select(BookListEntry.id).where(BookListEntry.list_id == list_id))
    alert_id = await alerts.save(db, hanako, catalog.SearchParams(q="猫"), "cats")
    await history.set_kept(db, hanako, True)
    await history.record_loan(db, hanako, bib_id, dt.date.today())
    shelf_id = await history.create_shelf(db, hanako, "favourites")
    history_entry = (await history.entries(db, hanako))[0].id
    await db.commit()
    loan_id = await db.scalar(select(Loan.id).where(Loan.patron_id == hanako, Loan.returned_on.is_(None)))
    hold_id = await db.scalar(select(Hold.id).where(Hold.patron_id == hanako))
    email_id = await db.scalar(select(Email.id).where(Email.patron_id == hanako))
    ids = {
        "loan_id": loan_id,
        "hold_id": hold_id,
        "list_id": list_id,
        "alert_id": alert_id,
        "email_id": email_id,
        "shelf_id": shelf_id,
        "list_entry": entry,
        "history_entry": history_entry,
    }
    assert all(ids.values()), ids
    return ids  # type: ignore[return-value]


def _path_for(path: str, ids: dict[str, int]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "entry_id":
            return str(ids["list_entry"] if path.startswith("/lists/") else ids["history_entry"])
        return str(ids[name])

    return PARAM.sub(value, path)


async def _form(db: AsyncSession) -> dict[str, str]:
    """Plausible values for every field a patron form has, so handlers get past validation."""
    branch = await db.scalar(select(Branch.id).order_by(Branch.id).limit(1))
    bib = await db.scalar(select(Bib.id).order_by(Bib.id).limit(1))
    return {
        "name": "x",
        "memo": "",
        "pickup": str(branch),
        "location": "",
        "contact": "phone",
        "email": "",
        "until": (dt.date.today() + dt.timedelta(days=10)).isoformat(),
        "shelf_id": "",
        "bib_id": str(bib),
        "next": "/mylibrary",
    }


async def test_another_patrons_ids_are_404_and_change_nothing(app: Litestar, db: AsyncSession) -> None:
    ids = await _owners_things(db)
    form = await _form(db)
    checked: list[str] = []
    # One client (one app instance), two patrons: the cookie jar is swapped between them.
    async with AsyncTestClient(app=app, base_url="http://testserver.local") as other:
        assert (await login(other, *HANAKO)).status_code == 303
        owner_cookies = dict(other.cookies)
        other.cookies.clear()
        assert (await login(other, *TARO)).status_code == 303
        token = csrf_from((await other.get("/lists")).text)
        before = await _snapshot(db)
        for path, method, name in _routes(app):
            params = {p for p, _ in PARAM.findall(path)}
            unknown = params - OWNED_PARAMS - PUBLIC_PARAMS - ({"registration_id", "document_id"} | _STAFF)
            assert not unknown, f"{name} {path}: say whether {unknown} name a patron's things"
            if path.startswith("/staff") or not params & OWNED_PARAMS:
                continue
            url = _path_for(path, ids)
            if method == "GET":
                response = await other.get(url, follow_redirects=False)
            else:
                response = await other.request(
                    method, url, data={**form, "_csrf_token": token}, follow_redirects=False
                )
            assert response.status_code == 404, f"{method} {url} ({name}) gave {response.status_code}"
            # htmx asks too: the fragment answer must be the same refusal.
            if method != "GET":
                response = await other.request(
                    method,
                    url,
                    data={**form, "_csrf_token": token},
                    headers={"HX-Request": "true"},
                    follow_redirects=False,
                )
                assert response.status_code == 404, (
                    f"htmx {method} {url} ({name}) gave {response.status_code}"
                )
            checked.append(f"{method} {path}")
        assert await _snapshot(db) == before
        # The owner still reaches them (the 404s were about ownership, not the ids).
        other.cookies.clear()
        other.cookies.update(owner_cookies)
        assert (await other.get(f"/lists/{ids['list_id']}")).status_code == 200
    assert len(checked) >= 20, checked
    SECURITY_FIGURES["ownership routes × methods checked"] = len(checked)


_STAFF = {"day_id", "event_id", "hold_id", "news_id", "registration_id", "document_id"}


async def test_staff_routes_refuse_patrons_and_send_guests_to_log_in(app: Litestar) -> None:
    checked = 0
    staff_routes = [
        (path, method)
        for path, method, name in _routes(app)
        if path.startswith("/staff") and name not in ("staff:login", "staff:login_post", "staff:logout")
    ]
    async with AsyncTestClient(app=app, base_url="http://testserver.local") as client:
        assert (await login(client, *TARO)).status_code == 303
        token = csrf_from((await client.get("/loans")).text)
        for path, method in staff_routes:
            url = PARAM.sub("1", path)
            response = await client.request(method, url, data={"_csrf_token": token}, follow_redirects=False)
            assert response.status_code == 403, f"patron {method} {url} gave {response.status_code}"
        client.cookies.clear()
        token = csrf_from((await client.get("/login")).text)
        for path, method in staff_routes:
            url = PARAM.sub("1", path)
            response = await client.request(method, url, data={"_csrf_token": token}, follow_redirects=False)
            assert response.status_code == 303, f"guest {method} {url} gave {response.status_code}"
            assert response.headers["location"].startswith("/staff/login")
            checked += 1
    assert checked >= 15
    SECURITY_FIGURES["staff routes refused to patrons and guests"] = checked


async def test_every_post_needs_the_csrf_token_and_post_only_paths_refuse_get(
    app: Litestar, db: AsyncSession
) -> None:
    form = await _form(db)
    ids = await _owners_things(db)
    posts, gets_refused = 0, 0
    async with AsyncTestClient(app=app, base_url="http://testserver.local") as client:
        assert (await login(client, *HANAKO)).status_code == 303
        before = await _snapshot(db)
        routes = _routes(app)
        methods_by_path: dict[str, set[str]] = {}
        for path, method, _ in routes:
            methods_by_path.setdefault(path, set()).add(method)
        for path, method, name in routes:
            if method != "POST":
                continue
            url = _path_for(path, {**ids, "bib_id": int(form["bib_id"])} | dict.fromkeys(_STAFF, 1))
            for headers in ({}, {"HX-Request": "true"}):
                response = await client.post(url, data=form, headers=headers, follow_redirects=False)
                assert response.status_code == 403, (
                    f"POST {url} ({name}) without a token: {response.status_code}"
                )
            posts += 1
            if "GET" not in methods_by_path[path]:
                response = await client.get(url, follow_redirects=False)
                assert response.status_code == 405, f"GET {url} ({name}): {response.status_code}"
                gets_refused += 1
        assert await _snapshot(db) == before
    assert posts >= 60
    SECURITY_FIGURES["POST routes refusing a missing CSRF token (plain and htmx)"] = posts
    SECURITY_FIGURES["POST-only paths refusing GET (405)"] = gets_refused

"""Hostile text in every place a patron or the catalogue can put text: shown as text, harmless in CSV.

Payloads go in through the real forms (list names and memos, list-entry memos, alert names, the
search box, the log-in `next`), through the catalogue (titles, authors, series, as an import would
store them) and into mails (a title in a pickup notice). Pages and mails must show them as text
(escaped once, never evaluated as a template); CSV cells that a spreadsheet would run as a formula
are neutralised; a `javascript:` address never becomes a link or a redirect.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from urllib.parse import quote

from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.mail import render as render_mail
from app.models import Bib, BookList, Series
from app.services import catalog
from app.services.notices import Outgoing
from tests.unit.conftest import csrf_from, login, make_settings
from tests.unit.test_security_matrix import SECURITY_FIGURES

PAYLOADS = (
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "{{ 7*7 }}{% raw %}",
    "javascript:alert(1)",
    '=HYPERLINK("http://evil.example","x")',
)
LIVE = re.compile(r"<script>alert|<img src=x|href=\"javascript:|src=\"javascript:", re.IGNORECASE)


def _assert_inert(html: str, where: str) -> None:
    assert not LIVE.search(html), f"{where}: payload became markup"
    assert "{{ 7*7 }}" in html or "7*7" not in html, f"{where}: template syntax was evaluated"


async def test_payloads_in_patron_text_render_as_text(client: AsyncTestClient, db: AsyncSession) -> None:
    assert (await login(client)).status_code == 303
    checked = 0
    bib_id = await db.scalar(select(Bib.id).order_by(Bib.id).limit(1))
    for payload in PAYLOADS:
        token = csrf_from((await client.get("/lists")).text)
        response = await client.post(
            "/lists", data={"_csrf_token": token, "name": payload[:50], "memo": payload}
        )
        assert response.status_code in (200, 303)
        await db.rollback()
        list_id = await db.scalar(select(BookList.id).where(BookList.name == payload[:50]))
        assert list_id is not None, payload
        await client.post(
            "/lists/entries",
            data={"_csrf_token": token, "list_id": str(list_id), "bib_id": str(bib_id), "memo": payload},
        )
        for path in ("/lists", f"/lists/{list_id}", "/mylibrary"):
            _assert_inert((await client.get(path)).text, f"{path} with {payload!r}")
        exported = (await client.get(f"/lists/{list_id}/csv")).content.decode("utf-8-sig")
        for row in csv.reader(io.StringIO(exported)):
            for cell in row:
                assert not cell.startswith(("=", "+", "-", "@")), f"CSV cell runs as a formula: {cell!r}"
        token = csrf_from((await client.get("/alerts")).text)
        await client.post("/alerts", data={"_csrf_token": token, "search": f"q={payload}", "name": payload})
        _assert_inert((await client.get("/alerts")).text, f"/alerts with {payload!r}")
        _assert_inert((await client.get("/search", params={"q": payload})).text, f"search for {payload!r}")
        checked += 6  # list name, list memo, entry memo, CSV, alert name, search
    SECURITY_FIGURES["injection payloads × patron fields"] = checked


async def test_next_never_leaves_the_site(client: AsyncTestClient) -> None:
    for target in ("javascript:alert(1)", "//evil.example/", "https://evil.example/", "/\\evil.example"):
        page = await client.get("/login", params={"next": target})
        _assert_inert(page.text, f"log-in page with next={target}")
        response = await login(client, next_path=target)
        assert response.status_code == 303 and response.headers["location"] == "/mylibrary", target
        await client.post("/logout", data={"_csrf_token": csrf_from((await client.get("/loans")).text)})


async def test_payloads_in_the_catalogue_and_in_mail(
    client: AsyncTestClient, db: AsyncSession, database_url: str, namespace: str, tmp_path: Path
) -> None:
    """What an import stores (title, authors, series) is shown as text in search, detail and mail."""
    series = Series(title=PAYLOADS[1])
    db.add(series)
    await db.flush()
    bib = Bib(
        title="猫 " + PAYLOADS[0],
        authors=PAYLOADS[1] + PAYLOADS[2],
        publisher=PAYLOADS[3],
        series_id=series.id,
        series_volume=1,
        loanable=True,
    )
    db.add(bib)
    await db.flush()
    await catalog.reindex_bibs(db, [bib.id])  # what the importer does after storing a record
    await db.commit()
    token = csrf_from((await client.get("/login")).text)
    assert (await client.post("/cart", data={"_csrf_token": token, "bib_id": str(bib.id)})).status_code < 400
    pages = [f"/bibs/{bib.id}", "/search?q=" + quote(PAYLOADS[1][:12]), "/cart"]
    for path in pages:
        html = (await client.get(path)).text
        assert f"/bibs/{bib.id}" in html, f"{path} does not show the hostile title at all"
        _assert_inert(html, path)
        assert "&lt;img src=x" in html, f"{path}: the hostile author is not shown as text"
    settings = make_settings(database_url, namespace, tmp_path)
    notice = Outgoing(
        id=1,
        type="pickup_ready",
        lang="en",
        name=PAYLOADS[0],
        recipients=("hanako@example.jp",),
        payload={"title": PAYLOADS[0] + PAYLOADS[2], "branch_en": PAYLOADS[1], "shelf_until": "2026-12-01"},
        attempts=0,
    )
    message = render_mail(notice, settings)
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    _assert_inert(html, "pickup mail (HTML)")
    assert "&lt;script&gt;" in html
    SECURITY_FIGURES["injection payloads × catalogue fields and mail"] = len(PAYLOADS) * (len(pages) + 1)

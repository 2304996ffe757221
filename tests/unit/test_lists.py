"""My book lists and favourites: limits in characters, another patron's ids, harmless CSV."""

from __future__ import annotations

import csv
import io

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Bib, BookList, BookListEntry, Favourite, Patron
from app.services import lists
from tests.unit.conftest import csrf_from, login


async def _hanako(db: AsyncSession) -> int:
    patron_id = await db.scalar(select(Patron.id).where(Patron.card_number == "100000017"))
    assert patron_id is not None
    return patron_id


async def test_limits_counted_in_characters(db: AsyncSession) -> None:
    hanako = await _hanako(db)
    with pytest.raises(lists.ListRefused, match="name_long"):
        await lists.create(db, hanako, "x" * 51)
    with pytest.raises(lists.ListRefused, match="memo_long"):
        await lists.create(db, hanako, "読みたい本", "x" * 1001)
    list_id = await lists.create(db, hanako, "名" * 50, "本" * 1000)  # 1 000 Japanese characters fit
    bib = await db.scalar(select(Bib.id).limit(1))
    assert bib is not None
    with pytest.raises(lists.ListRefused, match="memo_long"):
        await lists.add_entry(db, hanako, list_id, bib, "x" * 1001)
    await lists.add_entry(db, hanako, list_id, bib, "メ" * 1000)
    with pytest.raises(lists.ListRefused, match="already"):
        await lists.add_entry(db, hanako, list_id, bib)


async def test_a_101st_list_and_a_101st_entry_are_refused(db: AsyncSession) -> None:
    hanako = await _hanako(db)
    for n in range(lists.MAX_LISTS):
        db.add(BookList(patron_id=hanako, name=f"l{n}"))
    await db.commit()
    with pytest.raises(lists.ListRefused, match="too_many_lists"):
        await lists.create(db, hanako, "one more")
    list_id = await db.scalar(select(BookList.id).where(BookList.patron_id == hanako).limit(1))
    assert list_id is not None
    bibs = (await db.scalars(select(Bib.id).order_by(Bib.id).limit(lists.MAX_ENTRIES + 1))).all()
    for bib in bibs[:-1]:
        db.add(BookListEntry(list_id=list_id, bib_id=bib))
    await db.commit()
    with pytest.raises(lists.ListRefused, match="list_full"):
        await lists.add_entry(db, hanako, list_id, bibs[-1])


async def test_csv_has_bom_columns_and_harmless_cells(db: AsyncSession) -> None:
    hanako = await _hanako(db)
    list_id = await lists.create(db, hanako, '=HYPERLINK("http://evil")')
    bib = await db.scalar(select(Bib.id).where(Bib.title == "吾輩は猫である"))
    assert bib is not None
    await lists.add_entry(db, hanako, list_id, bib, '=HYPERLINK("http://evil","x")')
    book_list, rows = await lists.entries(db, hanako, list_id)
    data = lists.to_csv(book_list, rows)
    assert data.startswith("\ufeff".encode())
    parsed = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert parsed[0] == ["title", "author", "publisher", "year", "isbn", "memo", "added"]
    assert parsed[1][0] == "吾輩は猫である" and parsed[1][5].startswith("'=HYPERLINK")
    for cell in ("-1+2", "+cmd", "@SUM(A1)", "\tx"):
        assert lists._cell(cell).startswith("'")


async def test_routes_three_ways_and_other_patrons_ids(client: AsyncTestClient, db: AsyncSession) -> None:
    await client.get("/?lang=en")
    await login(client)
    page = await client.get("/lists")
    csrf = csrf_from(page.text)
    created = await client.post(
        "/lists",
        data={"_csrf_token": csrf, "name": "<script>alert(1)</script>", "memo": "{{ 7*7 }}"},
        follow_redirects=False,
    )
    assert created.status_code == 303
    shown = await client.get(created.headers["location"])
    assert (
        "&lt;script&gt;" in shown.text
        and "<script>alert(1)</script>" not in shown.text
        and "{{ 7*7 }}" in shown.text
    )
    list_id = int(created.headers["location"].rsplit("/", 1)[1])
    bib = await db.scalar(select(Bib.id).where(Bib.title == "こころ"))
    added = await client.post(
        "/lists/entries",
        data={"list_id": list_id, "bib_id": bib},
        headers={"HX-Request": "true", "x-csrftoken": csrf},
    )
    assert added.status_code == 200 and "Added to the list." in added.text and "<html" not in added.text
    csv_response = await client.get(f"/lists/{list_id}/csv")
    assert csv_response.headers["content-type"].startswith(
        "text/csv"
    ) and "こころ" in csv_response.content.decode("utf-8-sig")
    too_long = await client.post("/lists", data={"_csrf_token": csrf, "name": "x" * 51})
    assert too_long.status_code == 400 and "at most 50 characters" in too_long.text
    # Taro cannot see, change or export Hanako's list.
    await client.post("/logout", data={"_csrf_token": csrf})
    await login(client, card="100000025", password="taro-2026")
    csrf = csrf_from((await client.get("/lists")).text)
    assert (await client.get(f"/lists/{list_id}")).status_code == 404
    assert (await client.get(f"/lists/{list_id}/csv")).status_code == 404
    assert (await client.post(f"/lists/{list_id}/delete", data={"_csrf_token": csrf})).status_code == 404
    assert (
        await client.post("/lists/entries", data={"_csrf_token": csrf, "list_id": list_id, "bib_id": bib})
    ).status_code == 404
    assert await db.scalar(select(func.count()).where(BookListEntry.list_id == list_id)) == 1


async def test_favourite_toggle(client: AsyncTestClient, db: AsyncSession) -> None:
    await client.get("/?lang=en")
    await login(client)
    bib = await db.scalar(select(Bib.id).where(Bib.title == "こころ"))
    detail = await client.get(f"/bibs/{bib}")
    assert ">Favourite</button>" in detail.text.replace("\n", "")
    csrf = csrf_from(detail.text)
    on = await client.post(f"/favourites/{bib}", headers={"HX-Request": "true", "x-csrftoken": csrf})
    assert "Remove from favourites" in on.text
    assert "こころ" in (await client.get("/favourites")).text
    await client.post(f"/favourites/{bib}", data={"_csrf_token": csrf})
    assert await db.scalar(select(Favourite.id)) is None
    assert (await client.post("/favourites/999999", data={"_csrf_token": csrf})).status_code == 404


async def test_add_form_for_a_search_result(client: AsyncTestClient, db: AsyncSession) -> None:
    await login(client)
    bib = await db.scalar(select(Bib.id).where(Bib.title == "こころ"))
    await lists.create(db, await _hanako(db), "夏休み")
    form = await client.get(f"/lists/add?bib_id={bib}&next=/search?q=x", headers={"HX-Request": "true"})
    assert form.status_code == 200 and "夏休み" in form.text and "<html" not in form.text
    assert 'name="next" value="/search?q=x"' in form.text
    offsite = await client.get(f"/lists/add?bib_id={bib}&next=https://evil.example/")
    assert 'value="https://evil.example/"' not in offsite.text  # only paths on this site
    assert (await client.get("/lists/add?bib_id=999999")).status_code == 404
    assert (await client.get("/lists/add?bib_id=abc")).status_code == 400

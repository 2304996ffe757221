"""Search, detail, cart and holds over HTTP: whole page, htmx block, plain POST → 303, bad input."""

import re

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Bib, Branch, Hold, Patron
from tests.unit.conftest import csrf_from, login, token

HX = {"HX-Request": "true"}


async def _bib(db: AsyncSession, title: str) -> int:
    bib_id = await db.scalar(select(Bib.id).where(Bib.title == title))
    assert bib_id is not None
    return bib_id


async def test_search_page_whole_and_block(client: AsyncTestClient) -> None:
    page = await client.get("/search?q=猫で&lang=en")
    assert page.status_code == 200 and "<html" in page.text and 'id="results"' in page.text
    assert '<label for="q">Search the catalogue</label>' in page.text and ">Search</button>" in page.text
    assert "吾輩は猫である" in page.text and "1 title found." in page.text
    block = await client.get("/search?q=pride", headers=HX)
    assert block.text.lstrip().startswith('<section id="results"') and "Pride and Prejudice" in block.text
    assert "On shelf at 2 libraries" in block.text and ">Add to cart</button>" in block.text


@pytest.mark.parametrize(
    "query", ["sort=drop", "page=-1", "page=99999", "year_from=abc", "isbn=12", "branch=77"]
)
async def test_bad_search_parameters_get_a_message(client: AsyncTestClient, query: str) -> None:
    page = await client.get(f"/search?q=猫&{query}&lang=en")
    assert page.status_code == 400 and 'role="alert"' in page.text


@pytest.mark.parametrize("q", ['"', '"NEAR OR *', "x" * 1000, "🐈", "<script>alert(1)</script>"])
async def test_hostile_search_text(client: AsyncTestClient, q: str) -> None:
    page = await client.get("/search", params={"q": q})
    assert page.status_code == 200 and "<script>alert(1)</script>" not in page.text


async def test_detail_page(client: AsyncTestClient, db: AsyncSession) -> None:
    page = await client.get(f"/bibs/{await _bib(db, '星の図書館 第2巻')}?lang=en")
    assert (
        page.status_code == 200
        and "Volumes in this series" in page.text
        and ">Add to cart</button>" in page.text
    )
    assert page.text.count("星の図書館 第") >= 4
    ref = await db.scalar(select(Bib.id).where(Bib.control_number == "demo-reference"))
    page = await client.get(f"/bibs/{ref}?lang=en")
    assert "This title cannot be reserved" in page.text and "Add to cart" not in page.text
    page = await client.get(f"/bibs/{ref}?lang=ja")
    assert "この書誌は予約できません" in page.text
    assert (await client.get("/bibs/999999")).status_code == 404
    assert (await client.get("/bibs/abc")).status_code == 404
    assert (await client.get("/bibs/99999999999999")).status_code in (400, 404)


async def test_cart_add_htmx_triggers_the_header_and_plain_post_redirects(
    client: AsyncTestClient, db: AsyncSession
) -> None:
    await client.get("/?lang=en")
    kokoro = await _bib(db, "こころ")
    csrf = await token(client, "/login")
    response = await client.post(
        "/cart", data={"bib_id": kokoro, "title": "こころ"}, headers={**HX, "x-csrftoken": csrf}
    )
    assert response.status_code == 200 and "cart-changed" in response.headers["hx-trigger"]
    assert (
        "In your cart" in response.text
        and ">Remove</button>" in response.text
        and "<html" not in response.text
    )
    link = await client.get("/cart/link", headers=HX)
    assert link.text.strip().startswith('<a id="cart-link"') and "Cart (1)" in link.text
    ginga = await _bib(db, "銀河鉄道の夜")
    plain = await client.post(
        "/cart", data={"_csrf_token": csrf, "bib_id": ginga, "next": "/search?q=x"}, follow_redirects=False
    )
    assert plain.status_code == 303 and plain.headers["location"] == "/search?q=x"
    cart = await client.get("/cart")
    assert (
        'id="cart"' in cart.text
        and "こころ" in cart.text
        and "銀河鉄道の夜" in cart.text
        and "Cart (2)" in cart.text
    )
    again = await client.post("/cart", data={"bib_id": kokoro}, headers={**HX, "x-csrftoken": csrf})
    assert "already in your cart" in again.text
    removed = await client.post(
        f"/cart/{kokoro}/remove", data={"from": "cart"}, headers={**HX, "x-csrftoken": csrf}
    )
    assert removed.text.lstrip().startswith('<section id="cart-section"') and "こころ" not in removed.text
    assert (await client.post(f"/cart/{kokoro}/remove", data={"_csrf_token": csrf})).status_code == 404


async def test_cart_refusals(client: AsyncTestClient, db: AsyncSession) -> None:
    await client.get("/?lang=en")
    csrf = await token(client, "/login")
    ref = await db.scalar(select(Bib.id).where(Bib.control_number == "demo-reference"))
    forged = await client.post("/cart", data={"bib_id": ref}, headers={**HX, "x-csrftoken": csrf})
    assert forged.status_code == 400 and "This title cannot be reserved" in forged.text
    assert (await client.post("/cart", data={"_csrf_token": csrf, "bib_id": "999999"})).status_code == 404
    assert (await client.post("/cart", data={"_csrf_token": csrf, "bib_id": "abc"})).status_code == 404
    assert (await client.post("/cart", data={"bib_id": "1"})).status_code == 403  # no CSRF token
    ids = (await db.scalars(select(Bib.id).where(Bib.loanable).order_by(Bib.id).limit(51))).all()
    for bib_id in ids[:50]:
        await client.post("/cart", data={"bib_id": bib_id}, headers={**HX, "x-csrftoken": csrf})
    full = await client.post("/cart", data={"bib_id": ids[50]}, headers={**HX, "x-csrftoken": csrf})
    assert full.status_code == 400 and "Your cart is full (50 titles)" in full.text
    assert "Cart (50)" in (await client.get("/cart")).text


async def _fill_cart(client: AsyncTestClient, db: AsyncSession, *titles: str) -> str:
    csrf = await token(client, "/login")
    for title in titles:
        await client.post(
            "/cart", data={"bib_id": await _bib(db, title)}, headers={**HX, "x-csrftoken": csrf}
        )
    return csrf


async def test_guest_logs_in_from_the_cart_and_keeps_it(client: AsyncTestClient, db: AsyncSession) -> None:
    await client.get("/?lang=en")
    await _fill_cart(client, db, "こころ", "坊っちゃん")
    cart = await client.get("/cart")
    response = await client.post(
        "/holds/confirm",
        data={"_csrf_token": csrf_from(cart.text), "bib": ["1"]},
        headers={"Referer": "http://testserver.local/cart"},
        follow_redirects=False,
    )
    assert response.status_code == 303 and response.headers["location"] == "/login?next=/cart"
    await login(client, next_path="/cart")
    cart = await client.get("/cart")
    assert "こころ" in cart.text and "坊っちゃん" in cart.text and "Cart (2)" in cart.text


async def test_place_holds_through_confirmation(client: AsyncTestClient, db: AsyncSession) -> None:
    await client.get("/?lang=en")
    await login(client, card="100000025", password="taro-2026")
    await _fill_cart(client, db, "こころ", "坊っちゃん")
    kokoro, botchan = await _bib(db, "こころ"), await _bib(db, "坊っちゃん")
    cart = await client.get("/cart")
    csrf = csrf_from(cart.text)
    confirm = await client.post("/holds/confirm", data={"_csrf_token": csrf, "bib": [str(kokoro)]})
    assert confirm.status_code == 200 and "こころ" in confirm.text and "坊っちゃん" not in confirm.text
    for label in ("Pickup library", "Pickup location", "Contact method"):
        assert f">{label}</label>" in confirm.text
    west = await db.scalar(select(Branch.id).where(Branch.code == "west"))
    placed = await client.post(
        "/holds/place",
        data={
            "_csrf_token": csrf,
            "bib": [str(kokoro)],
            "pickup": str(west),
            "location": "",
            "contact": "phone",
        },
        follow_redirects=False,
    )
    assert placed.status_code == 303 and placed.headers["location"] == "/holds/placed"
    result = await client.get("/holds/placed")
    assert "Reserved." in result.text and "こころ" in result.text
    cart = await client.get("/cart")
    assert "坊っちゃん" in cart.text and "Cart (1)" in cart.text  # the placed title left the cart
    taro_id = await db.scalar(select(Patron.id).where(Patron.card_number == "100000025"))
    holds_now = (await db.scalars(select(Hold.bib_id).where(Hold.patron_id == taro_id))).all()
    assert holds_now == [kokoro] and botchan not in holds_now


async def test_forged_pickup_changes_nothing(client: AsyncTestClient, db: AsyncSession) -> None:
    await client.get("/?lang=en")
    await login(client, card="100000025", password="taro-2026")
    csrf = await token(client, "/cart")
    kokoro = await _bib(db, "こころ")
    before = await db.scalar(select(func.count()).select_from(Hold))
    for fields in (
        {"pickup": "999", "contact": "phone"},
        {"pickup": "1", "contact": "fax"},
        {"pickup": "3", "location": "1", "contact": "phone"},
    ):
        response = await client.post(
            "/holds/place", data={"_csrf_token": csrf, "bib": [str(kokoro)], **fields}
        )
        assert response.status_code == 400 and 'role="alert"' in response.text
    assert await db.scalar(select(func.count()).select_from(Hold)) == before


async def test_refused_patrons_see_the_reason(client: AsyncTestClient, db: AsyncSession) -> None:
    await client.get("/?lang=en")
    await login(client, card="100000041", password="jiro-2026")
    csrf = await token(client, "/cart")
    west = await db.scalar(select(Branch.id).where(Branch.code == "west"))
    kokoro = await _bib(db, "こころ")
    confirm = await client.post("/holds/confirm", data={"_csrf_token": csrf, "bib": [str(kokoro)]})
    assert "Your library card has expired" in confirm.text
    await client.post(
        "/holds/place",
        data={"_csrf_token": csrf, "bib": [str(kokoro)], "pickup": str(west), "contact": "phone"},
        follow_redirects=False,
    )
    result = await client.get("/holds/placed")
    assert "Not reserved:" in result.text and "Your library card has expired" in result.text


async def _hanako_hold(db: AsyncSession) -> int:
    hanako = await db.scalar(select(Patron.id).where(Patron.card_number == "100000017"))
    hold_id = await db.scalar(select(Hold.id).where(Hold.patron_id == hanako))
    assert hold_id is not None
    return hold_id


async def test_holds_page_and_actions_three_ways(client: AsyncTestClient, db: AsyncSession) -> None:
    await client.get("/?lang=en")
    await login(client)
    hold_id = await _hanako_hold(db)
    page = await client.get("/holds")
    assert (
        'id="holds"' in page.text
        and ">Cancel hold</button>" in page.text
        and ">Suspend</button>" in page.text
    )
    assert "Place in queue (estimate)" in page.text
    csrf = csrf_from(page.text)
    block = await client.post(
        f"/holds/{hold_id}/suspend", data={"until": "2099-01-01"}, headers={**HX, "x-csrftoken": csrf}
    )
    assert block.status_code == 400 and "Please give a date" in block.text
    import datetime as dt

    from app import clock

    until = (clock.today() + dt.timedelta(days=7)).isoformat()
    block = await client.post(
        f"/holds/{hold_id}/suspend", data={"until": until}, headers={**HX, "x-csrftoken": csrf}
    )
    assert block.text.lstrip().startswith(f'<li id="hold-{hold_id}"') and ">Resume</button>" in block.text
    plain = await client.post(f"/holds/{hold_id}/resume", data={"_csrf_token": csrf}, follow_redirects=False)
    assert plain.status_code == 303 and plain.headers["location"] == "/holds"
    assert "Your hold is active again." in (await client.get("/holds")).text
    confirm = await client.get(f"/holds/{hold_id}/cancel")
    assert "You will lose your place in the queue" in confirm.text
    await client.post(f"/holds/{hold_id}/cancel", data={"_csrf_token": csrf})
    assert (await db.get_one(Hold, hold_id, populate_existing=True)).status == "cancelled"
    page = await client.get("/holds")
    assert "Cancelled" in page.text and ">Cancel hold</button>" not in page.text


async def test_change_pickup_form_three_ways(client: AsyncTestClient, db: AsyncSession) -> None:
    """The Holds page links to each hold's change form; htmx loads it into the card, plain GET is a page."""
    await client.get("/?lang=en")
    await login(client)
    hold_id = await _hanako_hold(db)
    page = await client.get("/holds")
    assert f'href="/holds/{hold_id}/change"' in page.text and "<select" not in page.text
    whole = await client.get(f"/holds/{hold_id}/change")
    assert whole.status_code == 200 and "<html" in whole.text and "Back to your holds" in whole.text
    assert f'id="h{hold_id}-pickup"' in whole.text and f'id="c{hold_id}-contact"' in whole.text
    assert "hx-post" not in whole.text.split("<main", 1)[1]  # plain forms: post, 303, back to /holds
    block = await client.get(f"/holds/{hold_id}/change", headers=HX)
    assert "<html" not in block.text and f'hx-target="#hold-{hold_id}"' in block.text
    assert f'id="h{hold_id}-pickup" name="pickup" required autofocus' in block.text
    west = await db.scalar(select(Branch.id).where(Branch.code == "west"))
    csrf = csrf_from(page.text)
    row = await client.post(
        f"/holds/{hold_id}/pickup", data={"pickup": str(west)}, headers={**HX, "x-csrftoken": csrf}
    )
    assert row.text.lstrip().startswith(f'<li id="hold-{hold_id}"')
    assert "The pickup library was changed." in row.text
    assert (await db.get_one(Hold, hold_id, populate_existing=True)).pickup_branch_id == west
    await client.post(f"/holds/{hold_id}/cancel", data={"_csrf_token": csrf})
    done = await client.get(f"/holds/{hold_id}/change")
    assert "please call or visit the library" in done.text and "<select" not in done.text.split("<main", 1)[1]


async def test_another_patrons_hold_is_404(client: AsyncTestClient, db: AsyncSession) -> None:
    hold_id = await _hanako_hold(db)
    await login(client, card="100000025", password="taro-2026")
    csrf = await token(client, "/holds")
    for action, data in (
        ("cancel", {}),
        ("resume", {}),
        ("suspend", {"until": "2030-01-01"}),
        ("pickup", {"pickup": "1"}),
        ("contact", {"contact": "phone"}),
    ):
        response = await client.post(f"/holds/{hold_id}/{action}", data={"_csrf_token": csrf, **data})
        assert response.status_code == 404, action
    assert (await client.get(f"/holds/{hold_id}/cancel")).status_code == 404
    assert (await client.get(f"/holds/{hold_id}/change")).status_code == 404
    assert (await db.get_one(Hold, hold_id, populate_existing=True)).status == "waiting"


async def test_reserve_in_order_page(client: AsyncTestClient, db: AsyncSession) -> None:
    await client.get("/?lang=en")
    await login(client, card="100000025", password="taro-2026")
    vols = [await _bib(db, f"星の図書館 第{n}巻") for n in (3, 1, 2)]
    csrf = await _fill_cart(client, db, "星の図書館 第3巻", "星の図書館 第1巻", "星の図書館 第2巻")
    page = await client.post("/holds/order", data={"_csrf_token": csrf, "bib": [str(v) for v in vols]})
    titles = re.findall(r'class="order-title">([^<]+)<', page.text)
    assert titles == ["星の図書館 第1巻", "星の図書館 第2巻", "星の図書館 第3巻"]  # series order first
    moved = await client.post(
        "/holds/order",
        data={"_csrf_token": csrf, "bib": [str(v) for v in vols], "move": f"up:{vols[2]}"},
        headers=HX,
    )
    assert re.findall(r'class="order-title">([^<]+)<', moved.text)[:2] == [
        "星の図書館 第2巻",
        "星の図書館 第1巻",
    ]
    west = await db.scalar(select(Branch.id).where(Branch.code == "west"))
    bad = await client.post(
        "/holds/place",
        data={
            "_csrf_token": csrf,
            "ordered": "1",
            "bib": [str(v) for v in vols],
            **{f"position_{v}": "1" for v in vols},
            "pickup": str(west),
            "contact": "phone",
        },
    )
    assert bad.status_code == 400 and "without gaps or repeats" in bad.text
    order = {vols[1]: "1", vols[2]: "2", vols[0]: "3"}
    await client.post(
        "/holds/place",
        data={
            "_csrf_token": csrf,
            "ordered": "1",
            "bib": [str(v) for v in vols],
            **{f"position_{k}": v for k, v in order.items()},
            "pickup": str(west),
            "contact": "phone",
        },
    )
    taro = await db.scalar(select(Patron.id).where(Patron.card_number == "100000025"))
    rows = (
        await db.execute(
            select(Hold.bib_id, Hold.series_position)
            .where(Hold.patron_id == taro)
            .order_by(Hold.series_position)
        )
    ).all()
    assert [b for b, _ in rows] == [vols[1], vols[2], vols[0]]


async def test_search_results_share_one_form_and_its_buttons_work_without_javascript(
    client: AsyncTestClient, db: AsyncSession
) -> None:
    """Each title's buttons belong to one form above the list (its CSRF token and the way back
    written once); without JavaScript the browser posts that form to the button's address, with
    the cart button's title id: added, removed and made a favourite, each back on the results."""
    assert (await login(client)).status_code == 303
    page = await client.get("/search?q=%E3%81%93%E3%81%93%E3%82%8D&lang=en")
    results = page.text.split('id="results"', 1)[1].split("</section>", 1)[0]
    listed = results.split('<ol class="cards results-list">', 1)[1].split("</ol>", 1)[0]
    assert "<form" not in listed and "_csrf_token" not in listed and 'name="next"' not in listed
    assert results.count('<form id="hit-actions" method="post"') == 1
    kokoro = await _bib(db, "こころ")
    button = re.search(
        rf'<button type="submit" form="hit-actions" formaction="/cart" name="bib_id" value="{kokoro}"', listed
    )
    assert button, "the cart button posts the shared form to /cart with the title's id"
    csrf = csrf_from(page.text)
    back = "/search?q=%E3%81%93%E3%81%93%E3%82%8D&lang=en"
    # What the browser sends for that button: the form's fields, then the button's name and value.
    added = await client.post(
        "/cart", data={"_csrf_token": csrf, "next": back, "bib_id": kokoro}, follow_redirects=False
    )
    assert added.status_code == 303 and added.headers["location"] == back
    page = await client.get(back)
    assert "Added to your cart." in page.text and "Cart (1)" in page.text
    assert f'formaction="/cart/{kokoro}/remove"' in page.text and "In your cart" in page.text
    removed = await client.post(
        f"/cart/{kokoro}/remove", data={"_csrf_token": csrf, "next": back}, follow_redirects=False
    )
    assert removed.status_code == 303 and removed.headers["location"] == back
    assert "Cart (0)" in (await client.get(back)).text
    assert f'formaction="/favourites/{kokoro}"' in page.text
    favoured = await client.post(
        f"/favourites/{kokoro}", data={"_csrf_token": csrf, "next": back}, follow_redirects=False
    )
    assert favoured.status_code == 303 and favoured.headers["location"] == back
    page = await client.get(back)
    hit = page.text.split(f'value="{kokoro}"', 1)[1].split("</li>", 1)[0]
    assert "Remove from favourites" in hit
    # Without the shared form's token nothing changes.
    refused = await client.post("/cart", data={"next": back, "bib_id": kokoro}, follow_redirects=False)
    assert refused.status_code == 403 and "Cart (0)" in (await client.get(back)).text


async def test_the_cart_fragment_names_the_title_from_the_catalogue(
    client: AsyncTestClient, db: AsyncSession
) -> None:
    """The buttons carry only a title's id: the answer names it from the catalogue, and a name
    sent along (the old forms' hidden field, or a forged one) is not what it shows."""
    await client.get("/?lang=en")
    kokoro = await _bib(db, "こころ")
    csrf = await token(client, "/login")
    headers = {**HX, "x-csrftoken": csrf}
    added = await client.post("/cart", data={"bib_id": kokoro, "title": "<b>forged</b>"}, headers=headers)
    assert added.status_code == 200 and 'aria-label="Remove こころ"' in added.text
    assert "forged" not in added.text
    again = await client.post("/cart", data={"bib_id": kokoro}, headers=headers)
    assert "already in your cart" in again.text and 'aria-label="Remove こころ"' in again.text
    removed = await client.post(f"/cart/{kokoro}/remove", data={}, headers=headers)
    assert removed.status_code == 200 and 'aria-label="Add to cart: こころ"' in removed.text

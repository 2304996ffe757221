"""The Loans page three ways (whole page, htmx block, plain POST → 303) and the bad inputs."""

import asyncio
import re

from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Loan, Patron
from tests.unit.conftest import login, token

HX = {"HX-Request": "true"}


async def _loan_ids(db: AsyncSession, card: str = "100000017") -> dict[int, int]:
    patron_id = await db.scalar(select(Patron.id).where(Patron.card_number == card))
    rows = await db.execute(select(Loan.id, Loan.renewals).where(Loan.patron_id == patron_id))
    return dict(rows.all())


async def _renewable_id(client: AsyncTestClient) -> int:
    page = await client.get("/loans")
    match = re.search(r'action="/loans/(\d+)/renew"', page.text)
    assert match
    return int(match.group(1))


async def test_whole_page_with_loans_list_and_stable_names(client: AsyncTestClient) -> None:
    await client.get("/?lang=en")
    await login(client)
    page = await client.get("/loans")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<!doctype html>" in page.text and 'id="loans"' in page.text
    assert page.text.count(">Renew</button>") == 1 and ">Renew all</button>" in page.text
    assert "Another patron has reserved this item." in page.text
    assert "Already renewed: a loan can be renewed only once." in page.text
    for name in ("My Library", "Loans", "Holds", "Search"):
        assert f">{name}</a>" in page.text
    assert 'aria-label="Renew 吾輩は猫である"' in page.text


async def test_htmx_get_returns_only_the_block(client: AsyncTestClient) -> None:
    await login(client)
    block = await client.get("/loans", headers=HX)
    assert block.status_code == 200
    assert block.text.lstrip().startswith('<section id="loans-section"') and "<html" not in block.text
    assert "HX-Request" in block.headers["vary"].split(",")  # (and Accept-Encoding: pages are gzipped)
    boosted = await client.get("/loans", headers={**HX, "HX-Boosted": "true"})
    assert "<html" in boosted.text  # boosted navigation gets the whole page


async def test_renew_inline_with_htmx_swaps_the_row(client: AsyncTestClient, db: AsyncSession) -> None:
    await client.get("/?lang=en")
    await login(client)
    loan_id = await _renewable_id(client)
    response = await client.post(
        f"/loans/{loan_id}/renew", headers={**HX, "x-csrftoken": await token(client)}
    )
    assert response.status_code == 200
    assert response.text.lstrip().startswith(f'<li id="loan-{loan_id}"') and "<html" not in response.text
    assert "Renewed. New due date:" in response.text
    assert (await _loan_ids(db))[loan_id] == 1


async def test_renew_without_javascript_redirects_with_a_message(
    client: AsyncTestClient, db: AsyncSession
) -> None:
    await client.get("/?lang=en")
    await login(client)
    loan_id = await _renewable_id(client)
    response = await client.post(
        f"/loans/{loan_id}/renew", data={"_csrf_token": await token(client)}, follow_redirects=False
    )
    assert response.status_code == 303 and response.headers["location"] == "/loans"
    page = await client.get("/loans")
    assert "Renewed “吾輩は猫である”. New due date:" in page.text
    assert (await _loan_ids(db))[loan_id] == 1
    again = await client.get("/loans")
    assert "Renewed “吾輩は猫である”" not in again.text  # the message is shown once


async def test_second_tab_is_told_it_is_already_renewed(client: AsyncTestClient, db: AsyncSession) -> None:
    await client.get("/?lang=en")
    await login(client)
    loan_id = await _renewable_id(client)
    csrf = await token(client)
    first = await client.post(f"/loans/{loan_id}/renew", data={"_csrf_token": csrf}, headers=HX)
    second = await client.post(f"/loans/{loan_id}/renew", data={"_csrf_token": csrf}, headers=HX)
    assert "Renewed. New due date:" in first.text
    assert "Already renewed" in second.text
    assert (await _loan_ids(db))[loan_id] == 1


async def test_concurrent_posts_renew_once(client: AsyncTestClient, db: AsyncSession) -> None:
    await login(client)
    loan_id = await _renewable_id(client)
    csrf = await token(client)
    responses = await asyncio.gather(
        *[client.post(f"/loans/{loan_id}/renew", data={"_csrf_token": csrf}, headers=HX) for _ in range(3)]
    )
    assert all(r.status_code == 200 for r in responses)
    assert (await _loan_ids(db))[loan_id] == 1


async def test_renewing_another_patrons_loan_is_404_and_changes_nothing(
    client: AsyncTestClient, db: AsyncSession
) -> None:
    taro_loans = await _loan_ids(db, "100000025")
    await login(client)
    before = await _loan_ids(db, "100000025")
    for loan_id in taro_loans:
        response = await client.post(f"/loans/{loan_id}/renew", data={"_csrf_token": await token(client)})
        assert response.status_code == 404
    assert (
        await client.post("/loans/999999/renew", data={"_csrf_token": await token(client)})
    ).status_code == 404
    assert await _loan_ids(db, "100000025") == before


async def test_malformed_loan_id_is_refused(client: AsyncTestClient) -> None:
    await login(client)
    csrf = await token(client)
    for bad in ("abc", "1e3", "-1", "9" * 40):
        response = await client.post(f"/loans/{bad}/renew", data={"_csrf_token": csrf})
        assert response.status_code in (400, 404), bad


async def test_renew_without_csrf_is_403_and_changes_nothing(
    client: AsyncTestClient, db: AsyncSession
) -> None:
    await login(client)
    loan_id = await _renewable_id(client)
    response = await client.post(f"/loans/{loan_id}/renew", headers=HX)
    assert response.status_code == 403
    response = await client.post(f"/loans/{loan_id}/renew", data={"_csrf_token": "forged"})
    assert response.status_code == 403
    assert (await _loan_ids(db))[loan_id] == 0


async def test_renew_all_htmx_and_plain(client: AsyncTestClient, db: AsyncSession) -> None:
    await client.get("/?lang=en")
    await login(client)
    block = await client.post("/loans/renew-all", headers={**HX, "x-csrftoken": await token(client)})
    assert block.text.lstrip().startswith('<section id="loans-section"')
    assert "Renewed 1 of 3 loans." in block.text
    assert "Another patron has reserved this item." in block.text
    plain = await client.post(
        "/loans/renew-all", data={"_csrf_token": await token(client)}, follow_redirects=False
    )
    assert plain.status_code == 303
    page = await client.get("/loans")
    assert "Renewed 0 of 3 loans." in page.text
    assert "“吾輩は猫である” was not renewed: Already renewed" in page.text
    assert sorted((await _loan_ids(db)).values()) == [1, 1, 0] or sorted((await _loan_ids(db)).values()) == [
        0,
        1,
        1,
    ]


async def test_overdue_loan_is_marked_and_not_renewable(client: AsyncTestClient) -> None:
    await client.get("/?lang=en")
    await login(client, card="100000025", password="taro-2026")
    page = await client.get("/loans")
    assert "is-overdue" in page.text and ">Overdue</strong>" in page.text
    assert "Overdue: please return it to the library." in page.text
    assert ">Renew</button>" not in page.text and ">Renew all</button>" not in page.text


async def test_guest_is_sent_to_log_in(client: AsyncTestClient) -> None:
    response = await client.get("/loans", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login?next=/loans"

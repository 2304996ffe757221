"""The digital library card: a barcode of the card number, inline SVG that our CSP allows."""

import pytest
from litestar.testing import AsyncTestClient

from app.policy import BARCODES, PolicyError, load_policy
from app.services.card import barcode_svg
from tests.unit.conftest import login


@pytest.mark.parametrize("symbology", BARCODES)
def test_every_policy_symbology_renders(symbology: str) -> None:
    svg = barcode_svg("100000017", symbology)
    assert svg.startswith("<svg") and "viewBox=" in svg and svg.count("<rect") > 20
    assert "style=" not in svg and "<script" not in svg


def test_codabar_wraps_the_number_in_start_and_stop_characters() -> None:
    import barcode

    expected = barcode.get("nw-7", "A100000017A").build()[0]
    bars = [int(w) for w in expected]
    assert sum(bars) > 0  # python-barcode's own encoding of the same data is what we draw
    assert barcode_svg("100000017", "nw-7") != barcode_svg("100000025", "nw-7")


def test_unknown_symbology_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "p.toml"
    path.write_text('card_barcode = "qr"\n')
    with pytest.raises(PolicyError, match="card_barcode"):
        load_policy(str(path))


async def test_card_page(client: AsyncTestClient) -> None:
    assert (await client.get("/card", follow_redirects=False)).status_code == 303
    await client.get("/?lang=en")
    await login(client)
    page = await client.get("/card")
    assert page.status_code == 200 and "<svg" in page.text and "100000017" in page.text
    assert "Hanako Yamada" in page.text and "Valid until" in page.text
    assert 'aria-label="Barcode of card number 100000017"' in page.text
    dashboard = await client.get("/mylibrary")
    assert ">Digital card</a>" in dashboard.text


async def test_card_works_offline_with_a_service_worker(client: AsyncTestClient) -> None:
    await login(client)
    page = await client.get("/card")
    assert 'rel="manifest"' in page.text and "card.js" in page.text
    worker = await client.get("/card-sw.js")
    assert worker.status_code == 200 and worker.headers["content-type"].startswith("text/javascript")
    assert "caches.match" in worker.text
    manifest = await client.get("/static/manifest.webmanifest")
    assert manifest.status_code == 200 and '"start_url": "/card"' in manifest.text

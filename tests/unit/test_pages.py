"""Every page in both languages, the preference switches, errors and headers."""

import re

import pytest
from babel.messages.extract import extract_from_dir
from litestar.testing import AsyncTestClient

from app import i18n
from tests.unit.conftest import login

PATRON_PAGES = ["/mylibrary", "/loans", "/holds", "/account/password"]
PUBLIC_PAGES = ["/", "/login", "/search", "/search?q=猫"]


@pytest.mark.parametrize("path", PUBLIC_PAGES + PATRON_PAGES)
async def test_every_page_in_japanese_and_english(client: AsyncTestClient, path: str) -> None:
    await login(client)
    ja = await client.get(path + ("&" if "?" in path else "?") + "lang=ja")
    assert ja.status_code == 200 and '<html lang="ja"' in ja.text
    assert "日本語" in ja.text and ">English</a>" in ja.text and "文字を大きく" in ja.text
    en = await client.get(path + ("&" if "?" in path else "?") + "lang=en")
    assert '<html lang="en"' in en.text and ">Large text</a>" in en.text and ">日本語</a>" in en.text
    assert '<main id="main"' in en.text and 'aria-label="Main"' in en.text


async def test_language_is_remembered_in_a_cookie(client: AsyncTestClient) -> None:
    response = await client.get("/?lang=en")
    assert "lang=en" in response.headers["set-cookie"]
    assert '<html lang="en"' in (await client.get("/login")).text
    await client.get("/?lang=ja")
    assert '<html lang="ja"' in (await client.get("/login")).text


async def test_default_language_from_accept_language_else_japanese(client: AsyncTestClient) -> None:
    assert '<html lang="en"' in (await client.get("/", headers={"Accept-Language": "en-GB,en;q=0.8"})).text
    assert '<html lang="ja"' in (await client.get("/", headers={"Accept-Language": "fr-FR"})).text
    assert '<html lang="ja"' in (await client.get("/")).text
    assert '<html lang="ja"' in (await client.get("/?lang=xx")).text  # unknown value: ignored
    # Asked again (the answer is memoised per header): each header keeps its own answer.
    for _ in range(2):
        asked = (("en-GB,en;q=0.8", "en"), ("ja,en-US;q=0.9", "ja"), ("fr,en;q=0.5", "en"), ("*", "ja"))
        for header, lang in asked:
            page = await client.get("/", headers={"Accept-Language": header})
            assert f'<html lang="{lang}"' in page.text, header


async def test_text_size_switch_is_remembered(client: AsyncTestClient) -> None:
    await client.get("/?lang=en")
    page = await client.get("/login?text=large")
    assert 'class="text-large"' in page.text and ">Normal text</a>" in page.text
    assert 'class="text-large"' in (await client.get("/")).text
    assert 'class="text-normal"' in (await client.get("/?text=normal")).text


async def test_switch_links_keep_each_pages_own_query(client: AsyncTestClient) -> None:
    """The language and text-size links keep the page's other parameters (worked out once per address)."""
    for _ in range(2):  # the second time from the memo
        cat = await client.get("/search?q=猫&sort=newest&lang=en")
        assert 'href="/search?q=%E7%8C%AB&amp;sort=newest&amp;lang=ja"' in cat.text
        assert 'href="/search?q=%E7%8C%AB&amp;sort=newest&amp;text=large"' in cat.text
        dog = await client.get("/search?q=犬&lang=en")
        assert 'href="/search?q=%E7%8A%AC&amp;lang=ja"' in dog.text and "%E7%8C%AB" not in dog.text


async def test_dates_in_the_locale_form(client: AsyncTestClient) -> None:
    await login(client)
    ja = await client.get("/loans?lang=ja")
    assert "年" in ja.text and "月" in ja.text
    en = await client.get("/loans?lang=en")
    assert any(
        month in en.text
        for month in ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
    )


async def test_every_ui_string_has_a_japanese_translation() -> None:
    catalog = i18n._catalog("ja")
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}
    missing = []
    for _file, _line, message, _comments, _ctx in extract_from_dir(
        "app",
        method_map=[("**.py", "python"), ("templates/**.html", "jinja2"), ("templates/**.txt", "jinja2")],
        keywords=keywords,
        options_map={
            "templates/**.html": {"extensions": "jinja2.ext.i18n"},
            "templates/**.txt": {"extensions": "jinja2.ext.i18n"},
        },
    ):
        key = message[0] if isinstance(message, tuple) else message
        if key not in catalog:
            missing.append(key)
    assert not missing, f"run scripts/i18n_sync.py and translate: {missing}"


async def test_dashboard_shows_loans_and_holds(client: AsyncTestClient) -> None:
    await client.get("/?lang=en")
    await login(client)
    page = await client.get("/mylibrary")
    assert "Hello, Hanako Yamada." in page.text and "100000017" in page.text
    assert "吾輩は猫である" in page.text and "1 active hold." in page.text


async def test_holds_page_lists_status_and_queue(client: AsyncTestClient) -> None:
    await client.get("/?lang=en")
    await login(client, card="100000066", password="sato-2026")
    page = await client.get("/holds")
    assert "銀河鉄道の夜" in page.text and "Waiting" in page.text and "Place in queue (estimate)" in page.text
    block = await client.get("/holds", headers={"HX-Request": "true"})
    assert block.text.lstrip().startswith('<section id="holds-section"')


async def test_search_page_finds_japanese_substrings_and_readings(client: AsyncTestClient) -> None:
    page = await client.get("/search?q=猫で&lang=en")
    assert "吾輩は猫である" in page.text
    assert "吾輩は猫である" in (await client.get("/search?q=わがはい")).text
    block = await client.get("/search?q=辞典", headers={"HX-Request": "true"})
    assert block.text.lstrip().startswith('<section id="results"') and "日本語大辞典" in block.text
    assert (
        "This title cannot be reserved" in (await client.get("/search?q=辞典&lang=en")).text
        or "この書誌は予約できません" in block.text
    )
    assert (await client.get("/search?q=" + "x" * 10_000)).status_code == 200
    assert (await client.get("/search?q=a&page=abc")).status_code == 400


async def test_hostile_text_is_escaped(client: AsyncTestClient) -> None:
    page = await client.get("/search?q=%3Cscript%3Ealert(1)%3C/script%3E")
    assert "<script>alert(1)</script>" not in page.text and "&lt;script&gt;" in page.text
    page = await client.get("/login?next=%22%3E%3Cimg%20src=x%3E")
    assert '"><img src=x>' not in page.text


async def test_unknown_page_is_a_friendly_404(client: AsyncTestClient) -> None:
    page = await client.get("/no-such-page?lang=en")
    assert page.status_code == 404 and "Page not found" in page.text and "<html" in page.text


async def test_security_headers(client: AsyncTestClient) -> None:
    response = await client.get("/")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"
    assert "server" not in response.headers


async def test_static_files_are_cached_by_content_hash(client: AsyncTestClient) -> None:
    page = await client.get("/")
    assert "/static/app.css?v=" in page.text
    css = await client.get("/static/app.css")
    assert css.status_code == 200 and "max-age=31536000" in css.headers["cache-control"]
    assert "set-cookie" not in css.headers or "session" not in css.headers["set-cookie"]


async def test_health_route_is_plain_and_keeps_no_session(client: AsyncTestClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200 and response.text == "ok"
    assert "session=" not in response.headers.get("set-cookie", "")


async def test_dev_mailbox_only_in_development(client: AsyncTestClient, tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert (await client.get("/dev/mail")).status_code == 404  # APP_ENV=test


async def test_dev_mailbox_lists_kept_mail(database_url: str, namespace: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from email.message import EmailMessage

    from app.main import create_app
    from tests.unit.conftest import make_settings

    settings = make_settings(database_url, namespace, tmp_path, APP_ENV="development")
    box = settings.var_dir / "mailbox"
    box.mkdir(parents=True)
    message = EmailMessage()
    message["Subject"], message["To"] = "【市立図書館】テスト", "hanako@example.jp"
    message.set_content("<b>本文</b>")
    (box / "1.eml").write_bytes(bytes(message))
    async with AsyncTestClient(app=create_app(settings), base_url="http://testserver.local") as dev:
        page = await dev.get("/dev/mail")
    assert (
        page.status_code == 200
        and "【市立図書館】テスト" in page.text
        and "&lt;b&gt;本文&lt;/b&gt;" in page.text
    )


def test_page_templates_have_no_inline_styles() -> None:
    """The CSP allows styles only from 'self': browsers block (and log) an inline style attribute."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "app" / "templates"
    offenders = [
        str(path.relative_to(root))
        for path in root.rglob("*.html")
        if "mail" not in path.parts and ('style="' in path.read_text() or "<style" in path.read_text())
    ]
    assert offenders == []


async def test_pages_and_static_files_are_gzipped_for_browsers_that_ask(client: AsyncTestClient) -> None:
    page = await client.get("/login", headers={"Accept-Encoding": "gzip"})
    assert page.headers.get("content-encoding") == "gzip" and "<form" in page.text
    plain = await client.get("/login", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    script = next(p for p in re.findall(r'src="(/static/[^"]+)"', page.text) if "htmx" in p)
    static = await client.get(script, headers={"Accept-Encoding": "gzip"})
    assert (
        static.headers.get("content-encoding") == "gzip"
        and "max-age=31536000" in static.headers["cache-control"]
    )

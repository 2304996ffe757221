"""Log-in, log-out, sessions, CSRF, rate limits and the forced password change, over HTTP."""

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Patron
from tests.unit.conftest import csrf_from, login, token

NEUTRAL = "The card number or password is not correct."


async def test_login_page_has_the_stable_names(client: AsyncTestClient) -> None:
    page = await client.get("/login?lang=en")
    assert page.status_code == 200
    assert '<label for="card_number">Card number</label>' in page.text
    assert '<label for="password">Password</label>' in page.text
    assert ">Log in</button>" in page.text


async def test_login_then_header_shows_name_and_log_out(client: AsyncTestClient) -> None:
    await client.get("/?lang=en")
    response = await login(client)
    assert response.status_code == 303 and response.headers["location"] == "/mylibrary"
    page = await client.get("/mylibrary")
    assert "Logged in as Hanako Yamada" in page.text and ">Log out</button>" in page.text
    assert ">Log in</a>" not in page.text


async def test_login_issues_a_new_session_id(client: AsyncTestClient) -> None:
    await login(client)  # a first session exists
    old = client.cookies.get("session")
    assert old
    response = await login(client, next_path="/loans")  # log in again with the old cookie
    new = client.cookies.get("session")
    assert new and new != old
    # The old id no longer works on the server.
    client.cookies.set("session", old)
    response = await client.get("/loans", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/login")


async def test_logout_ends_the_session_on_the_server(client: AsyncTestClient) -> None:
    await login(client)
    sid = client.cookies.get("session")
    page = await client.get("/mylibrary")
    response = await client.post(
        "/logout", data={"_csrf_token": csrf_from(page.text)}, follow_redirects=False
    )
    assert response.status_code == 303 and response.headers["location"] == "/login?logged_out=1"
    client.cookies.set("session", sid)  # replaying the old cookie does not bring the session back
    response = await client.get("/mylibrary", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login?next=/mylibrary"


@pytest.mark.parametrize(
    ("card", "password", "message", "status"),
    [
        ("999999999", "hanako-2026", NEUTRAL, 400),  # unknown card
        ("100000017", "wrong-password", NEUTRAL, 400),  # wrong password
        ("100000058", "anything", NEUTRAL, 400),  # no password yet: same answer
        ("abcdefghi", "hanako-2026", "A card number is 9 half-width digits.", 400),
        ("1234", "hanako-2026", "A card number is 9 half-width digits.", 400),
        ("１" * 10_000, "x", "A card number is 9 half-width digits.", 400),
        ("100000017", "x" * 10_000, "The password is too long.", 400),
        ("", "", "Please enter your card number and password.", 400),
    ],
)
async def test_bad_log_ins_get_a_clear_message(
    client: AsyncTestClient, card: str, password: str, message: str, status: int
) -> None:
    await client.get("/?lang=en")
    response = await login(client, card=card, password=password)
    assert response.status_code == status
    assert message in response.text
    assert client.cookies.get("session") is None


async def test_unknown_card_and_wrong_password_read_the_same(client: AsyncTestClient) -> None:
    await client.get("/?lang=en")
    unknown = await login(client, card="999999999", password="hanako-2027")
    wrong = await login(client, card="100000017", password="hanako-2027")

    def body(text: str) -> str:
        return text.split('<main id="main"', 1)[1].replace("999999999", "CARD").replace("100000017", "CARD")

    assert body(unknown.text) == body(wrong.text)


async def test_full_width_digits_are_normalised(client: AsyncTestClient) -> None:
    full_width = "100000017".translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    response = await login(client, card=full_width)
    assert response.status_code == 303


async def test_next_must_be_a_local_path(client: AsyncTestClient) -> None:
    response = await login(client, next_path="https://evil.example/")
    assert response.headers["location"] == "/mylibrary"
    await client.post("/logout", data={"_csrf_token": await token(client, "/mylibrary")})
    response = await login(client, next_path="//evil.example/")
    assert response.headers["location"] == "/mylibrary"


async def test_post_without_csrf_token_is_refused(client: AsyncTestClient) -> None:
    await client.get("/login")
    response = await client.post("/login", data={"card_number": "100000017", "password": "hanako-2026"})
    assert response.status_code == 403
    assert client.cookies.get("session") is None


async def test_a_csrf_token_outside_ascii_is_refused_not_an_error(client: AsyncTestClient) -> None:
    """Full-width or kana "tokens" in the form: 403 and nothing added (Litestar's own check raised a
    TypeError on them, a 500)."""
    await login(client)
    for bad in ("ｆ" * 128, "予約" * 40, "0" * 63 + "ｆ"):
        response = await client.post("/cart", data={"bib_id": "1", "_csrf_token": bad})
        assert response.status_code == 403, response.text
    link = await client.get("/cart/link", headers={"hx-request": "true"})
    assert "(0)" in link.text


async def test_get_on_a_state_changing_route_is_refused(client: AsyncTestClient) -> None:
    await login(client)
    response = await client.get("/logout")
    assert response.status_code == 405
    assert (await client.get("/mylibrary", follow_redirects=False)).status_code == 200


async def test_rate_limit_per_card_and_client(client: AsyncTestClient) -> None:
    await client.get("/?lang=en")
    for _ in range(5):
        assert (await login(client, password="wrong")).status_code == 400
    limited = await login(client)  # even the right password waits now
    assert limited.status_code == 429 and "Too many attempts" in limited.text
    # Another card from the same client is not blocked by this card's counter.
    assert (await login(client, card="100000025", password="taro-2026")).status_code == 303


async def test_rate_limit_is_kept_in_redis_across_app_instances(settings, client: AsyncTestClient) -> None:  # type: ignore[no-untyped-def]
    from app.main import create_app

    for _ in range(5):
        await login(client, password="wrong")
    async with AsyncTestClient(app=create_app(settings), base_url="http://testserver.local") as other:
        assert (await login(other)).status_code == 429


async def test_expired_session_goes_to_login_then_back(client: AsyncTestClient) -> None:
    await login(client)
    client.cookies.set("session", "0" * 64)  # what the browser holds after the server forgot the session
    response = await client.get("/loans?x=1", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login?next=/loans%3Fx%3D1"
    page = await client.get(response.headers["location"])
    assert 'name="next" value="/loans?x=1"' in page.text
    response = await client.post(
        "/login",
        data={
            "_csrf_token": csrf_from(page.text),
            "card_number": "100000017",
            "password": "hanako-2026",
            "next": "/loans?x=1",
        },
        follow_redirects=False,
    )
    assert response.headers["location"] == "/loans?x=1"


async def test_htmx_request_with_expired_session_redirects_the_whole_page(client: AsyncTestClient) -> None:
    response = await client.get("/loans", headers={"HX-Request": "true"})
    assert response.headers.get("hx-redirect", "").startswith("/login?next=")


async def test_temporary_password_leads_only_to_the_change_page(
    client: AsyncTestClient, db: AsyncSession
) -> None:
    await client.get("/?lang=en")
    response = await login(client, card="100000033", password="temp-1234")
    assert response.headers["location"] == "/account/password"
    for path in ("/mylibrary", "/loans", "/holds"):
        blocked = await client.get(path, follow_redirects=False)
        assert blocked.status_code == 303 and blocked.headers["location"] == "/account/password"
    page = await client.get("/account/password")
    assert "temporary password" in page.text
    csrf = csrf_from(page.text)
    bad = await client.post(
        "/account/password",
        data={
            "_csrf_token": csrf,
            "current_password": "temp-1234",
            "new_password": "new-pass-1",
            "confirm_password": "other",
        },
    )
    assert bad.status_code == 400 and "do not match" in bad.text
    ok = await client.post(
        "/account/password",
        data={
            "_csrf_token": csrf,
            "current_password": "temp-1234",
            "new_password": "misaki2026",
            "confirm_password": "misaki2026",
        },
        follow_redirects=False,
    )
    assert ok.status_code == 303 and ok.headers["location"] == "/mylibrary"
    assert (await client.get("/loans", follow_redirects=False)).status_code == 200
    patron = await db.scalar(select(Patron).where(Patron.card_number == "100000033"))
    assert patron is not None and patron.password_state == "permanent"


@pytest.mark.parametrize(
    ("current", "new", "confirm", "message"),
    [
        ("wrong", "abcdef12", "abcdef12", "The current password is not correct."),
        ("hanako-2026", "abc", "abc", "The password must be 6 to 20 characters long."),
        ("hanako-2026", "ab cdef12", "ab cdef12", "may contain only half-width letters and digits"),
        ("hanako-2026", "abcdef12", "abcdef13", "do not match"),
        ("hanako-2026", "x" * 10_000, "x" * 10_000, "The password must be 6 to 20 characters long."),
    ],
)
async def test_change_password_rules(
    client: AsyncTestClient, db: AsyncSession, current: str, new: str, confirm: str, message: str
) -> None:
    await client.get("/?lang=en")
    await login(client)
    before = await db.scalar(select(Patron.password_hash).where(Patron.card_number == "100000017"))
    csrf = await token(client, "/account/password")
    response = await client.post(
        "/account/password",
        data={
            "_csrf_token": csrf,
            "current_password": current,
            "new_password": new,
            "confirm_password": confirm,
        },
    )
    assert response.status_code == 400 and message in response.text
    after = await db.scalar(select(Patron.password_hash).where(Patron.card_number == "100000017"))
    assert before == after


async def test_expired_card_can_log_in_and_is_told(client: AsyncTestClient) -> None:
    await client.get("/?lang=en")
    response = await login(client, card="100000041", password="jiro-2026")
    assert response.status_code == 303
    page = await client.get("/mylibrary")
    assert "Your library card has expired" in page.text


async def test_session_cookie_flags(client: AsyncTestClient) -> None:
    response = await login(client)
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie


async def test_inactivity_timeout_comes_from_the_policy(client: AsyncTestClient, settings) -> None:  # type: ignore[no-untyped-def]
    import redis

    from tests.support import REDIS_URL

    await login(client)
    key = f"{settings.redis_namespace}:sessions:{client.cookies.get('session')}"
    ttl = redis.Redis.from_url(REDIS_URL).ttl(key)
    assert 3500 < ttl <= 3600  # default policy: 60 minutes of inactivity


async def test_each_page_pushes_the_inactivity_timeout_forward(client: AsyncTestClient, settings) -> None:  # type: ignore[no-untyped-def]
    import redis

    from tests.support import REDIS_URL

    await login(client)
    key = f"{settings.redis_namespace}:sessions:{client.cookies.get('session')}"
    store = redis.Redis.from_url(REDIS_URL)
    store.expire(key, 100)  # as if the patron had been idle for most of the hour
    stored = store.get(key)
    page = await client.get("/loans")
    assert page.status_code == 200 and 'id="loans"' in page.text
    assert 3500 < store.ttl(key) <= 3600 and store.get(key) == stored  # renewed, not rewritten
    store.delete(key)
    assert (await client.get("/loans", follow_redirects=False)).status_code == 303  # gone: log in again

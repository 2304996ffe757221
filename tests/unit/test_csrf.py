"""app/csrf.py: the one-HMAC CSRF check accepts and refuses exactly the tokens Litestar's does."""

from __future__ import annotations

import hashlib
import hmac
from hmac import compare_digest

from litestar.config.csrf import CSRFConfig
from litestar.middleware.csrf import CSRF_SECRET_LENGTH, CSRFMiddleware, generate_csrf_token

from app.csrf import _decode, _tokens_match, check_csrf_with_one_hmac

SECRET = "s" * 48


def _litestar_decode(token: str, secret: str = SECRET) -> str | None:
    """Litestar's own check, as litestar/middleware/csrf.py writes it."""
    if len(token) < CSRF_SECRET_LENGTH + 1:
        return None
    head, signature = token[:CSRF_SECRET_LENGTH], token[CSRF_SECRET_LENGTH:]
    expected = hmac.new(secret.encode(), head.encode(), hashlib.sha256).hexdigest()
    return head if compare_digest(signature, expected) else None


def _litestar_match(request_token: str, cookie_token: str) -> bool:
    a, b = _litestar_decode(request_token), _litestar_decode(cookie_token)
    return a is not None and b is not None and compare_digest(a, b)


def test_the_same_tokens_pass_and_fail_as_with_litestars_check() -> None:
    middleware = CSRFMiddleware(app=None, config=CSRFConfig(secret=SECRET))  # type: ignore[arg-type]
    mine, other = generate_csrf_token(SECRET), generate_csrf_token(SECRET)
    foreign = generate_csrf_token("x" * 48)  # signed with another secret
    flipped = mine[:-1] + ("0" if mine[-1] != "0" else "1")  # its signature altered
    same_head = mine[:CSRF_SECRET_LENGTH] + other[CSRF_SECRET_LENGTH:]  # a head with another's signature
    cases = [
        (mine, mine),
        (mine, other),
        (other, mine),
        (mine, foreign),
        (foreign, foreign),
        (flipped, mine),
        (mine, flipped),
        (flipped, flipped),
        (same_head, mine),
        (mine[:CSRF_SECRET_LENGTH], mine[:CSRF_SECRET_LENGTH]),
        ("", ""),
    ]
    for request_token, cookie_token in cases:
        expected = _litestar_match(request_token, cookie_token)
        found = _tokens_match(middleware, request_token, cookie_token)
        assert found is expected, (request_token, cookie_token)
    wide = "ｆ" * 128  # full-width characters: Litestar's check raised TypeError; refused here
    assert not _tokens_match(middleware, wide, wide) and not _tokens_match(middleware, wide, mine)
    assert _decode(middleware, mine[:CSRF_SECRET_LENGTH] + "ｆ" * 64) is None
    assert _tokens_match(middleware, mine, mine) and not _tokens_match(middleware, mine, other)
    assert not _tokens_match(middleware, foreign, foreign) and not _tokens_match(middleware, flipped, flipped)
    for token in (mine, foreign, flipped, "", mine[:10]):
        assert _decode(middleware, token) == _litestar_decode(token)


def test_the_app_checks_with_them() -> None:
    check_csrf_with_one_hmac()
    assert CSRFMiddleware._decode_csrf_token is _decode
    assert CSRFMiddleware._csrf_tokens_match is _tokens_match

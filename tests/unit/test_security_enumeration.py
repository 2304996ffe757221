"""Enumeration: the forms that take a card number (or a person's details) answer an unknown card exactly
as they answer a known card with wrong details — the same status, the same page, and the same time
within noise — so nobody can learn which card numbers exist.

Forms: log-in; password registration and its re-issue (the same form: card, birth date, phone);
the temporary password by mail (Fukuoka's reset); online self-registration (a new applicant and one
who has already applied). Each pair is asked alternately, SAMPLES times each after a warm-up, with
the rate-limit counters cleared before each request (the limits are tested elsewhere; here they
would only end the run early). The times are compared by their medians; the gap allowed is a quarter
of the slower median, or 2 ms for forms that take only a few milliseconds — a skipped password hash
(~40 ms here) or a skipped write is far outside it (see test_the_timing_check_can_fail). A pair
whose times differ is measured again (ATTEMPTS): load from outside the test comes and goes, a leak
does not.

The figures go to ENUMERATION_TIMES for `python -m bench security`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from statistics import median

import redis
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Registration
from tests.support import REDIS_URL
from tests.unit.conftest import csrf_from
from tests.unit.test_security_matrix import SECURITY_FIGURES

SAMPLES = 11
WARM_UP = 2
# A run whose medians differ is measured again, up to this many times: CI runs this beside the other
# database's browser tests, and a burst of their load once put 3.4 ms between two 8 ms medians. A
# real difference (a skipped hash or write) is there in every run.
ATTEMPTS = 3
UNKNOWN_CARD = "199999999"  # the demo library has no such card
# form name -> (unknown median ms, known-but-wrong median ms, allowed gap ms)
ENUMERATION_TIMES: dict[str, tuple[float, float, float]] = {}

Ask = Callable[[AsyncTestClient, str], Awaitable[tuple[int, str]]]


def allowed_gap(a: list[float], b: list[float]) -> float:
    return max(0.25 * max(median(a), median(b)), 0.002)


def alike(a: list[float], b: list[float]) -> bool:
    return abs(median(a) - median(b)) <= allowed_gap(a, b)


def test_the_timing_check_can_fail() -> None:
    """The comparison flags a form that skips the password hash for unknown cards (40 ms vs 1 ms) or
    a 5 ms write on a 3 ms form, and lets through the noise of one machine."""
    assert not alike([0.041, 0.043, 0.040, 0.045], [0.001, 0.0012, 0.0011, 0.0009])
    assert not alike([0.008, 0.0085, 0.0079], [0.003, 0.0031, 0.0029])
    assert alike([0.041, 0.048, 0.040, 0.052], [0.044, 0.039, 0.046, 0.041])


def _same_page(body: str, *typed: str) -> str:
    """The page without what differs by design: the values the visitor typed, echoed in the form."""
    for value in typed:
        body = body.replace(value, "<typed>")
    return re.sub(r'name="_csrf_token" value="[^"]*"', "", body)


async def _compare(
    client: AsyncTestClient, name: str, ask: Ask, unknown: str, known: str, namespace: str
) -> None:
    limits = redis.Redis.from_url(REDIS_URL)

    async def timed(card: str) -> tuple[float, int, str]:
        for key in limits.scan_iter(f"{namespace}:rl:*"):
            limits.delete(key)
        started = time.perf_counter()
        status, body = await ask(client, card)
        return time.perf_counter() - started, status, body

    for _attempt in range(ATTEMPTS):
        times: dict[str, list[float]] = {unknown: [], known: []}
        answers: dict[str, set[tuple[int, str]]] = {unknown: set(), known: set()}
        for n in range(WARM_UP + SAMPLES):
            for card in (unknown, known) if n % 2 else (known, unknown):
                took, status, body = await timed(card)
                answers[card].add((status, _same_page(body, unknown, known)))
                if n >= WARM_UP:
                    times[card].append(took)
        assert len(answers[unknown]) == 1, f"{name}: the answer to an unknown card varies"
        assert answers[unknown] == answers[known], f"{name}: unknown and known cards answered differently"
        ENUMERATION_TIMES[name] = (
            median(times[unknown]) * 1000,
            median(times[known]) * 1000,
            allowed_gap(times[unknown], times[known]) * 1000,
        )
        if alike(times[unknown], times[known]):
            return
    raise AssertionError(f"{name}: {ENUMERATION_TIMES[name]} (ms), in each of {ATTEMPTS} runs")


async def test_forms_answer_an_unknown_card_as_a_known_one_with_wrong_details(
    client: AsyncTestClient, namespace: str, db: AsyncSession
) -> None:
    token = csrf_from((await client.get("/login?lang=en")).text)

    async def log_in(c: AsyncTestClient, card: str) -> tuple[int, str]:
        data = {"_csrf_token": token, "card_number": card, "password": "wrong-password-1"}
        response = await c.post("/login", data=data)
        return response.status_code, response.text

    # 100000058 has no password yet: checked against a dummy hash, like an unknown card.
    await _compare(
        client, "log-in (known card, wrong password)", log_in, UNKNOWN_CARD, "100000017", namespace
    )
    await _compare(
        client, "log-in (known card, no password yet)", log_in, UNKNOWN_CARD, "100000058", namespace
    )

    agreed = await client.post("/password/register", data={"_csrf_token": token, "agree": "yes"})
    assert agreed.status_code == 200 and "birth" in agreed.text

    async def identity(c: AsyncTestClient, card: str) -> tuple[int, str]:
        data = {"_csrf_token": token, "card_number": card, "birth": "19900402", "phone": "092-000-0000"}
        response = await c.post("/password/register/identity", data=data)
        return response.status_code, response.text

    # Registration (100000058, no password yet, wrong birth date) and re-issue (Hanako has one).
    await _compare(
        client, "password registration (wrong birth date)", identity, UNKNOWN_CARD, "100000058", namespace
    )
    await _compare(
        client, "password re-issue (wrong details)", identity, UNKNOWN_CARD, "100000017", namespace
    )

    async def temporary(c: AsyncTestClient, card: str) -> tuple[int, str]:
        data = {"_csrf_token": token, "agree": "yes", "card_number": card, "email": "someone@example.jp"}
        response = await c.post("/password/temporary", data=data)
        return response.status_code, response.text

    await _compare(
        client, "temporary password by mail (wrong address)", temporary, UNKNOWN_CARD, "100000017", namespace
    )

    # Self-registration has no card: a new applicant against one whose application is on file.
    form = {
        "eligibility": "live",
        "name": "田村 明",
        "kana": "タムラ アキラ",
        "birth": "19850505",
        "address": "福岡市中央区天神1-1-1",
        "phone": "092-123-4567",
        "password": "akira2026",
        "confirm_password": "akira2026",
        "_csrf_token": token,
    }
    on_file = "applied@example.jp"
    first = await client.post("/register", data={**form, "email": on_file}, follow_redirects=False)
    assert first.status_code == 303
    fresh = iter(range(10**6))

    async def apply(c: AsyncTestClient, who: str) -> tuple[int, str]:
        address = on_file if who == "on file" else f"new{next(fresh)}@example.jp"
        response = await c.post("/register", data={**form, "email": address}, follow_redirects=False)
        return response.status_code, response.headers.get("location", "")

    await _compare(
        client, "self-registration (already applied)", apply, "new applicant", "on file", namespace
    )
    applications = (await db.scalars(select(Registration.email))).all()
    assert applications.count(on_file) == 1  # the repeats made no second application

    SECURITY_FIGURES["enumeration: forms × card pairs answering alike (status, page, time)"] = len(
        ENUMERATION_TIMES
    )

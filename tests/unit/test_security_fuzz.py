"""Every form posted with hypothesis-made values: never a 5xx, and the database still consistent.

The forms are the POST routes of the app's route table; the field names are every `name="…"` in the
templates. Values: any Unicode (control characters included), huge and negative numbers, full-width
digits, malformed dates, empty and very long text. Path ids: in range, negative, beyond 32 bits.
Three callers: a logged-in patron (patron routes), a logged-in member of staff (staff routes) and a
guest (log-in, password and registration forms). 6 000 cases on SQLite and 4 000 on PostgreSQL,
10 000 in all (the PostgreSQL run of the test command is the longer one; FUZZ_CASES sets one number
for both); a fixed seed per database makes a run repeatable.

Afterwards: no loan without an item, no item on two open loans, no item held for two patrons, no
patron over the hold limit.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from litestar import Litestar
from litestar.testing import TestClient

from app.integrity import CHECKS, broken
from app.policy import load_policy
from tests.support import BACKEND, sync_engine
from tests.unit.conftest import csrf_from
from tests.unit.test_security_matrix import PARAM, SECURITY_FIGURES, _routes

TEMPLATES = Path(__file__).resolve().parents[2] / "app" / "templates"
FIELDS = sorted(
    {n for p in TEMPLATES.rglob("*.html") for n in re.findall(r'name="([a-z_]+)"', p.read_text())}
    - {"viewport", "_csrf_token"}
)
GUEST_FORMS = {
    "auth:login_post",
    "staff:login_post",
    "password:agree",
    "password:identity_post",
    "password:new_post",
    "password:temporary_post",
    "register:apply",
    "register:confirm",
    "alerts:unsubscribe",
    "emails:confirm",
}
NEVER = {"auth:logout", "staff:logout"}  # they would end the caller's session for every later case
DEFAULT_CASES = {"sqlite": 6000, "postgresql": 4000}  # 10 000 in the test command
TOTAL = int(os.environ.get("FUZZ_CASES", DEFAULT_CASES[BACKEND]))
SEEDS = {"sqlite": 20261125, "postgresql": 20261126}
SHARES = {"patron": 0.6, "staff": 0.25, "guest": 0.15}

VALUES = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x1F), max_size=10),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.integers(min_value=0, max_value=60).map(str),
    # Long text, built by repetition (generating thousands of characters one by one is slow).
    st.builds(lambda part, times: part * times, st.text(min_size=1, max_size=12), st.integers(200, 800)),
    st.sampled_from(
        [
            "",
            " ",
            "０１２３",
            "2026-13-45",
            "9" * 40,
            "null",
            "-1",
            "1e309",
            "NaN",
            "\x00",
            "😀" * 300,
            "100000017",
        ]
    ),
)
FORMS = st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=8)
IDS = st.one_of(st.integers(min_value=1, max_value=40), st.integers(min_value=-5, max_value=2**40))


def _log_in(client: TestClient, who: str) -> str:
    if who == "patron":
        token = csrf_from(client.get("/login").text)
        form = {"_csrf_token": token, "card_number": "100000017", "password": "hanako-2026"}
        assert client.post("/login", data=form, follow_redirects=False).status_code == 303
    elif who == "staff":
        token = csrf_from(client.get("/staff/login").text)
        form = {"_csrf_token": token, "username": "counter", "password": "counter-2026"}
        assert client.post("/staff/login", data=form, follow_redirects=False).status_code == 303
    return csrf_from(client.get("/login").text)


def _targets(app: Litestar, who: str) -> list[tuple[str, str]]:
    out = []
    for path, method, name in _routes(app):
        if method != "POST" or name in NEVER:
            continue
        kind = "guest" if name in GUEST_FORMS else "staff" if path.startswith("/staff") else "patron"
        if kind == who:
            out.append((path, name))
    return out


def _fuzz(
    client: TestClient, who: str, targets: list[tuple[str, str]], examples: int, errors: list[str]
) -> int:
    """Post `examples` hypothesis-made forms to `targets` as `who`; returns how many were sent."""
    token = _log_in(client, who)
    sent = 0

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @seed(SEEDS[BACKEND])  # repeatable, and different cases on each database
    @given(target=st.sampled_from(targets), form=FORMS, ids=st.lists(IDS, min_size=2, max_size=2))
    def case(target: tuple[str, str], form: dict[str, str], ids: list[int]) -> None:
        nonlocal sent
        path, name = target
        numbers = iter(ids)
        url = PARAM.sub(lambda _m: str(next(numbers, 1)), path)
        response = client.post(url, data={**form, "_csrf_token": token}, follow_redirects=False)
        sent += 1
        if response.status_code >= 500:
            errors.append(f"{who} POST {url} ({name}) {form!r}: {response.status_code}")

    case()
    return sent


def test_fuzzed_forms_never_answer_5xx_and_keep_the_data_consistent(app: Litestar, database_url: str) -> None:
    errors: list[str] = []
    timings: dict[str, float] = {}
    cases = 0
    for who, share in SHARES.items():
        started = time.perf_counter()
        targets = _targets(app, who)
        assert targets, who
        with TestClient(app=app, base_url="http://testserver.local") as client:
            cases += _fuzz(client, who, targets, max(1, int(TOTAL * share)), errors)
        timings[who] = time.perf_counter() - started
    print("fuzz seconds by caller:", {k: round(v, 1) for k, v in timings.items()})
    assert not errors, errors[:5]
    assert cases >= TOTAL * 0.99
    _assert_invariants(database_url)
    SECURITY_FIGURES["fuzzed form posts (hypothesis), 5xx answers: 0"] = cases


def _assert_invariants(database_url: str) -> None:
    engine = sync_engine(database_url)
    try:
        with engine.connect() as connection:
            assert broken(connection, load_policy("default").hold_limit) == dict.fromkeys(CHECKS, 0)
    finally:
        engine.dispose()

"""Brute force against two web processes: the log-in and identity limits count across both, and an
attacker's attempts do not lock the real patron out of their own phone.

The two servers are real `python -m app serve` processes (uvicorn) behind what they take for a
reverse proxy: each client is told apart by the `X-Forwarded-For` address uvicorn accepts from
127.0.0.1, as it would from nginx. Limits (app/services/ratelimit.py, app/services/registration.py):
5 wrong passwords per card and client and 30 per client in 15 minutes; 5 identity mismatches per
card and client and 20 per client.
"""

from __future__ import annotations

import re

import httpx

from app.services.ratelimit import LOGIN_PER_CARD_AND_CLIENT, LOGIN_PER_CLIENT
from app.services.registration import IDENTITY_PER_CARD_AND_CLIENT
from tests.unit.test_security_matrix import SECURITY_FIGURES

CSRF = re.compile(r'name="_csrf_token" value="([^"]+)"')
ATTACKER = "203.0.113.9"
HANAKO_PHONE = "198.51.100.7"


class Visitor:
    """One browser, behind one address, talking to either server."""

    def __init__(self, address: str) -> None:
        self.client = httpx.Client(timeout=60, headers={"X-Forwarded-For": address})
        self.token = ""

    def log_in(self, server: str, card: str, password: str) -> int:
        if not self.token:
            match = CSRF.search(self.client.get(server + "/login").text)
            assert match
            self.token = match.group(1)
        data = {"_csrf_token": self.token, "card_number": card, "password": password, "next": "/mylibrary"}
        return self.client.post(server + "/login", data=data).status_code

    def identity(self, server: str, card: str) -> int:
        match = CSRF.search(self.client.get(server + "/password/register").text)
        assert match
        token = match.group(1)
        self.client.post(server + "/password/register", data={"_csrf_token": token, "agree": "yes"})
        data = {"_csrf_token": token, "card_number": card, "birth": "19000101", "phone": "0000000000"}
        return self.client.post(server + "/password/register/identity", data=data).status_code


def test_limits_hold_across_processes_and_spare_the_patrons_own_client(
    cluster: tuple[list[str], dict[str, str]],
) -> None:
    (a, b), _ = cluster
    servers = (a, b)
    attempts = failures = 0  # every try; the wrong ones, which are what the limits count
    attacker = Visitor(ATTACKER)
    # Per card and client: wrong passwords for Hanako's card, alternating between the servers.
    for n in range(LOGIN_PER_CARD_AND_CLIENT.attempts):
        assert attacker.log_in(servers[n % 2], "100000017", f"guess-{n}") == 400
        attempts, failures = attempts + 1, failures + 1
    for server in servers:  # now refused on both, even with the right password
        assert attacker.log_in(server, "100000017", "hanako-2026") == 429
        attempts += 1
    # Per client: the attacker moves on to other card numbers until the client limit, over both.
    card = 100001000
    while failures < LOGIN_PER_CLIENT.attempts:
        status = attacker.log_in(servers[failures % 2], str(card), "guess")
        assert status == 400, (failures, status)
        card, attempts, failures = card + 1, attempts + 1, failures + 1
    for server in servers:
        assert attacker.log_in(server, str(card + 1), "guess") == 429  # any card, from this client
        attempts += 1

    # Hanako, on her own phone, is not locked out by any of it: on either server.
    for server in servers:
        hanako = Visitor(HANAKO_PHONE)
        assert hanako.log_in(server, "100000017", "hanako-2026") == 303
        assert "Hanako" in hanako.client.get(server + "/mylibrary?lang=en").text
    # Her own typo still counts against her own client only, and a good password clears it.
    hanako = Visitor(HANAKO_PHONE)
    assert hanako.log_in(a, "100000017", "hanako-2025") == 400
    assert hanako.log_in(b, "100000017", "hanako-2026") == 303

    # Password registration: identity mismatches are counted across both servers too.
    prober = Visitor("203.0.113.10")
    for n in range(IDENTITY_PER_CARD_AND_CLIENT.attempts):
        assert prober.identity(servers[n % 2], "100000058") == 400
    for server in servers:
        assert prober.identity(server, "100000058") == 429
    assert Visitor("198.51.100.8").identity(b, "100000058") == 400  # another client: still asked, not locked
    SECURITY_FIGURES["brute-force attempts over 2 web processes (limits held, patron not locked out)"] = (
        attempts + IDENTITY_PER_CARD_AND_CLIENT.attempts + 2
    )

"""Password hashing (argon2id, off the event loop) and the policy's password rules."""

from __future__ import annotations

import asyncio
import string
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from app.i18n import N_
from app.policy import Policy

MAX_PASSWORD_INPUT = 128  # longer input is refused before hashing, so it cannot be used to burn CPU

_hasher = PasswordHasher()  # argon2id, RFC 9106 low-memory profile


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _hasher.hash("not-a-real-password")


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


def _verify(stored: str | None, password: str) -> bool:
    try:
        # An account without a password is checked against a dummy hash, so it takes as long.
        return _hasher.verify(stored or _dummy_hash(), password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def verify_password(stored: str | None, password: str) -> bool:
    return await asyncio.to_thread(_verify, stored, password)


def needs_rehash(stored: str) -> bool:
    return _hasher.check_needs_rehash(stored)


class PasswordRuleBroken(ValueError):
    """A new password breaks a policy rule; `rule` names which, `params` fill the message."""

    def __init__(self, rule: str, **params: object) -> None:
        super().__init__(rule)
        self.rule = rule
        self.params = params


RULE_MESSAGES = {
    "length": N_("The password must be %(min)s to %(max)s characters long."),
    "charset": N_("The password may contain only half-width letters and digits%(symbols)s."),
    "letter": N_("The password must contain at least one letter."),
    "digit": N_("The password must contain at least one digit."),
    "symbol": N_("The password must contain at least one of these symbols: %(symbols)s"),
    "mismatch": N_("The new password and its confirmation do not match."),
    "same": N_("The new password must differ from the current one."),
    "current": N_("The current password is not correct."),
}


def check_password_rules(policy: Policy, password: str) -> None:
    """Raise PasswordRuleBroken naming the first rule the password breaks."""
    if not policy.password_min_length <= len(password) <= policy.password_max_length:
        raise PasswordRuleBroken("length", min=policy.password_min_length, max=policy.password_max_length)
    allowed = set(string.ascii_letters + string.digits + policy.password_symbols)
    if any(ch not in allowed for ch in password):
        symbols = f" ({policy.password_symbols})" if policy.password_symbols else ""
        raise PasswordRuleBroken("charset", symbols=symbols)
    classes = {
        "letter": any(ch in string.ascii_letters for ch in password),
        "digit": any(ch in string.digits for ch in password),
        "symbol": any(ch in policy.password_symbols for ch in password),
    }
    for required in policy.password_required_classes:
        if not classes[required]:
            raise PasswordRuleBroken(required, symbols=policy.password_symbols)

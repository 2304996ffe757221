"""Log-in and password changes for patrons and staff."""

from __future__ import annotations

import datetime as dt
import unicodedata
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.i18n import N_
from app.models import Patron, StaffUser
from app.policy import Policy
from app.services import passwords
from app.services.ratelimit import LOGIN_PER_CARD_AND_CLIENT, LOGIN_PER_CLIENT, RateLimiter

MAX_CARD_INPUT = 40


class LoginRefused(Exception):
    """Log-in failed; `reason` is shown to the user (never which of card or password was wrong)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


LOGIN_MESSAGES = {
    "malformed": N_("A card number is %(length)s half-width digits%(prefix)s."),
    "failed": N_("The card number or password is not correct."),
    "too_long": N_("The password is too long."),
    "rate_limited": N_("Too many attempts. Please wait 15 minutes and try again, or ask at the counter."),
    "empty": N_("Please enter your card number and password."),
}


@dataclass(frozen=True)
class SessionPatron:
    """What the session keeps about the logged-in patron, so pages need no query for it."""

    id: int
    card_number: str
    name: str
    name_en: str
    password_state: str
    card_expires_on: dt.date

    @property
    def session_data(self) -> dict[str, object]:
        return {
            "pid": self.id,
            "card": self.card_number,
            "name": self.name,
            "name_en": self.name_en,
            "pw": self.password_state,
            "exp": self.card_expires_on.isoformat(),
        }

    @classmethod
    def from_session(cls, data: dict[str, Any]) -> SessionPatron:
        return cls(
            int(data["pid"]),
            str(data["card"]),
            str(data["name"]),
            str(data.get("name_en", "")),
            str(data["pw"]),
            dt.date.fromisoformat(str(data["exp"])),
        )

    def display_name(self, lang: str) -> str:
        return self.name_en if lang == "en" and self.name_en else self.name


def normalize_digits(value: str) -> str:
    """Full-width digits and stray spaces or hyphens, as phones type them, become plain digits."""
    value = unicodedata.normalize("NFKC", value)
    return "".join(ch for ch in value if not ch.isspace() and ch not in "-ー‐−")


def normalize_card(value: str, policy: Policy) -> str | None:
    """The card number in canonical form, or None if it cannot be one."""
    if len(value) > MAX_CARD_INPUT:
        return None
    card = normalize_digits(value)
    return card if policy.card_regex.fullmatch(card) else None


async def authenticate(
    session: AsyncSession,
    *,
    card_input: str,
    password: str,
    client: str,
    policy: Policy,
    limiter: RateLimiter,
) -> SessionPatron:
    """Check card and password; raise LoginRefused with one neutral reason for any failure."""
    if not card_input.strip() or not password:
        raise LoginRefused("empty")
    card = normalize_card(card_input, policy)
    if card is None:
        raise LoginRefused("malformed")
    if len(password) > passwords.MAX_PASSWORD_INPUT:
        raise LoginRefused("too_long")
    pair_key = f"{card}|{client}"
    if await limiter.exceeded(LOGIN_PER_CARD_AND_CLIENT, pair_key) or await limiter.exceeded(
        LOGIN_PER_CLIENT, client
    ):
        raise LoginRefused("rate_limited")
    patron = await session.scalar(select(Patron).where(Patron.card_number == card))
    stored = patron.password_hash if patron is not None and patron.password_state != "none" else None
    ok = await passwords.verify_password(stored, password)
    if not ok or patron is None:
        await limiter.hit(LOGIN_PER_CARD_AND_CLIENT, pair_key)
        await limiter.hit(LOGIN_PER_CLIENT, client)
        raise LoginRefused("failed")
    await limiter.reset(LOGIN_PER_CARD_AND_CLIENT, pair_key)
    if patron.password_hash and passwords.needs_rehash(patron.password_hash):
        patron.password_hash = await passwords.hash_password(password)
        await session.commit()
    return SessionPatron(
        patron.id,
        patron.card_number,
        patron.name,
        patron.name_en,
        patron.password_state,
        patron.card_expires_on,
    )


async def record_language(session: AsyncSession, patron_id: int, lang: str) -> None:
    """Remember the language the patron uses, for the mails the worker sends them."""
    await session.execute(update(Patron).where(Patron.id == patron_id, Patron.lang != lang).values(lang=lang))
    await session.commit()


async def change_password(
    session: AsyncSession,
    patron_id: int,
    *,
    current: str,
    new: str,
    confirm: str,
    policy: Policy,
    now: dt.datetime,
) -> None:
    """Replace the password after checking the current one and the policy; raises PasswordRuleBroken."""
    if max(len(current), len(new), len(confirm)) > passwords.MAX_PASSWORD_INPUT:
        raise passwords.PasswordRuleBroken(
            "length", min=policy.password_min_length, max=policy.password_max_length
        )
    patron = await session.get_one(Patron, patron_id)
    if not await passwords.verify_password(patron.password_hash, current):
        raise passwords.PasswordRuleBroken("current")
    if new != confirm:
        raise passwords.PasswordRuleBroken("mismatch")
    passwords.check_password_rules(policy, new)
    if new == current:
        raise passwords.PasswordRuleBroken("same")
    patron.password_hash = await passwords.hash_password(new)
    patron.password_state = "permanent"
    patron.password_changed_at = now.replace(tzinfo=None)
    await session.commit()


async def authenticate_staff(session: AsyncSession, username: str, password: str) -> StaffUser | None:
    """A staff user for a correct name and password, else None (same time either way)."""
    if len(username) > 50 or len(password) > passwords.MAX_PASSWORD_INPUT:
        return None
    user = await session.scalar(select(StaffUser).where(StaffUser.username == username, StaffUser.active))
    ok = await passwords.verify_password(user.password_hash if user else None, password)
    return user if ok and user is not None else None

"""Online password registration and re-issue (Koga, Kitakyushu, Fukushima), and temporary passwords by mail
(Fukuoka).

Identity is card number + date of birth + the registered phone number (+ the name in katakana
where the policy asks). Any mismatch gets one neutral answer, whether the card exists or not.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.i18n import N_
from app.models import Email, Notice, Patron
from app.policy import Policy
from app.services import notices, passwords
from app.services.accounts import normalize_card, normalize_digits
from app.services.circulation import temporary_password
from app.services.ratelimit import Limit, RateLimiter

IDENTITY_PER_CARD_AND_CLIENT = Limit("identity-card-client", 5, 15 * 60)
IDENTITY_PER_CLIENT = Limit("identity-client", 20, 15 * 60)

MESSAGES = {
    "no_match": N_("These details do not match our records."),
    "birth_format": N_("Enter the date of birth as 8 digits: year, month, day (for example 19900401)."),
    "kana_hiragana": N_("Enter the name in katakana (カタカナ), not hiragana."),
    "kana_format": N_("Enter the name in full-width katakana, as on your registration."),
    "expired": N_("Your card has expired. Please renew it at the library counter first."),
    "rate_limited": N_("Too many attempts. Please wait 15 minutes and try again, or ask at the counter."),
    "terms": N_("Please read the terms of use and agree to them first."),
}


class IdentityRefused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Identity:
    card: str
    birth: dt.date | None  # None: malformed card number (still answered neutrally)
    phone: str
    kana: str


def parse_birth(value: str, today: dt.date) -> dt.date:
    """8 digits YYYYMMDD (full-width accepted), a real date, not in the future."""
    digits = unicodedata.normalize("NFKC", value).strip()
    if not re.fullmatch(r"\d{8}", digits):
        raise IdentityRefused("birth_format")
    try:
        day = dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError as exc:
        raise IdentityRefused("birth_format") from exc
    if day > today or day.year < 1900:
        raise IdentityRefused("birth_format")
    return day


def normalize_kana(value: str) -> str:
    """Half-width katakana becomes full-width (NFKC); hiragana is refused with a hint."""
    text = unicodedata.normalize("NFKC", value).replace(" ", "").replace("\u3000", "")
    if any("\u3041" <= ch <= "\u3096" for ch in text):
        raise IdentityRefused("kana_hiragana")
    if not text or not all("\u30a1" <= ch <= "\u30fc" for ch in text):
        raise IdentityRefused("kana_format")
    return text


def _phone(value: str) -> str:
    return normalize_digits(value)[:20]


async def check_identity(
    session: AsyncSession,
    *,
    card_input: str,
    birth_input: str,
    phone_input: str,
    kana_input: str,
    client: str,
    policy: Policy,
    limiter: RateLimiter,
    today: dt.date,
) -> Patron:
    """The patron these details belong to, or IdentityRefused with one neutral reason for any mismatch."""
    birth = parse_birth(birth_input[:20], today)  # a format mistake is the patron's typing, not a secret
    kana = normalize_kana(kana_input[:60]) if policy.password_registration_requires_kana else ""
    card = normalize_card(card_input[:40], policy) or card_input[:40]
    key = f"{card}|{client}"
    if await limiter.exceeded(IDENTITY_PER_CARD_AND_CLIENT, key) or await limiter.exceeded(
        IDENTITY_PER_CLIENT, client
    ):
        raise IdentityRefused("rate_limited")
    patron = await session.scalar(select(Patron).where(Patron.card_number == card))
    matched = (
        patron is not None
        and patron.birth_date == birth
        and _phone(patron.phone) == _phone(phone_input)
        and (not policy.password_registration_requires_kana or normalize_digits(patron.name_kana) == kana)
    )
    if not matched or patron is None:
        await limiter.hit(IDENTITY_PER_CARD_AND_CLIENT, key)
        await limiter.hit(IDENTITY_PER_CLIENT, client)
        raise IdentityRefused("no_match")
    await limiter.reset(IDENTITY_PER_CARD_AND_CLIENT, key)
    if patron.card_expires_on < today:
        # Fukushima: 有効期限が切れてしまうとホームページからパスワードを新規・再発行することができません
        raise IdentityRefused("expired")
    return patron


async def set_password(
    session: AsyncSession, patron_id: int, new: str, confirm: str, *, policy: Policy, now: dt.datetime
) -> None:
    if max(len(new), len(confirm)) > passwords.MAX_PASSWORD_INPUT:
        raise passwords.PasswordRuleBroken(
            "length", min=policy.password_min_length, max=policy.password_max_length
        )
    if new != confirm:
        raise passwords.PasswordRuleBroken("mismatch")
    passwords.check_password_rules(policy, new)
    patron = await session.get_one(Patron, patron_id)
    patron.password_hash = await passwords.hash_password(new)
    patron.password_state = "permanent"
    patron.password_changed_at = now.replace(tzinfo=None)
    await session.commit()


async def mailed_temporary_password(session: AsyncSession, notice_id: int, policy: Policy) -> str:
    """Make the temporary password a notice will carry and store only its hash (Fukuoka)."""
    patron_id = await session.scalar(select(Notice.patron_id).where(Notice.id == notice_id))
    password = temporary_password(policy)
    await session.execute(
        update(Patron)
        .where(Patron.id == patron_id)
        .values(password_hash=await passwords.hash_password(password), password_state="temporary")
    )
    await session.commit()
    return password


async def request_temporary_password(
    session: AsyncSession,
    *,
    card_input: str,
    email_input: str,
    client: str,
    policy: Policy,
    limiter: RateLimiter,
    now: dt.datetime,
) -> None:
    """Fukuoka: mail a temporary password to the registered address. Answers the same either way."""
    card = normalize_card(card_input[:40], policy) or card_input[:40]
    key = f"{card}|{client}"
    if await limiter.exceeded(IDENTITY_PER_CARD_AND_CLIENT, key) or await limiter.exceeded(
        IDENTITY_PER_CLIENT, client
    ):
        raise IdentityRefused("rate_limited")
    await limiter.hit(IDENTITY_PER_CARD_AND_CLIENT, key)
    await limiter.hit(IDENTITY_PER_CLIENT, client)
    row = (
        await session.execute(
            select(Patron.id, Patron.card_expires_on)
            .join(Email, Email.patron_id == Patron.id)
            .where(
                Patron.card_number == card,
                Email.address == email_input.strip()[:254],
                Email.confirmed_at.is_not(None),
            )
        )
    ).first()
    if row is None or row.card_expires_on < now.date():
        return
    # The password itself is made by the worker when it sends the mail: it is never stored in clear.
    await notices.queue(
        session,
        type="temporary_password",
        patron_id=row.id,
        dedup_key=f"temporary_password:patron:{row.id}:{now.replace(tzinfo=None).isoformat()}",
        payload={"email": email_input.strip()[:254]},
        now=now,
    )
    await session.commit()

"""Email addresses: add (a confirmation link is mailed), confirm by POST, remove, choose the default.

Only confirmed addresses receive notices (spec 2). The link's token is made when the worker sends
the mail, and only its SHA-256 is stored: a database copy cannot be used to confirm anything.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import unicodedata
from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.i18n import N_
from app.models import Email, Hold
from app.policy import Policy
from app.services import notices

TOKEN_HOURS = 24
MAX_ADDRESS = 254

MESSAGES = {
    "full_width": N_("The address contains full-width characters. Please type it in half-width characters."),
    "no_at": N_("The address has no “@”."),
    "double_dot": N_("The address has two dots in a row."),
    "dot_before_at": N_("The address has a dot right before the “@”."),
    "comma": N_("The address has a comma where a dot should be."),
    "invalid": N_("This is not a valid email address: %(detail)s"),
    "too_long": N_("The address is too long."),
    "limit": N_("You can register up to %(max)s addresses. Remove one first."),
    "duplicate": N_("This address is already registered."),
    "token_invalid": N_("This confirmation link is not valid. It may have been used already."),
    "token_expired": N_(
        "This confirmation link has expired. Please add the address again to get a new link."
    ),
    "token_other": N_("This link is for another patron's address. Please log out and open it again."),
    "not_confirmed": N_("Only a confirmed address can be the default."),
}


class EmailRefused(ValueError):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


class EmailNotFound(LookupError):
    """No address with that id belongs to this patron."""


@dataclass(frozen=True)
class AddressView:
    id: int
    address: str
    confirmed: bool
    is_default: bool


def check_address(raw: str) -> str:
    """The address as it will be stored, or EmailRefused naming the mistake (the ones the seeds list)."""
    value = raw.strip()
    if len(value) > MAX_ADDRESS:
        raise EmailRefused("too_long")
    if any(unicodedata.east_asian_width(ch) in ("F", "W") for ch in value):
        raise EmailRefused("full_width")  # Koga: 全角文字を使用しているアドレスは届かない
    if "@" not in value:
        raise EmailRefused("no_at")
    if "," in value:
        raise EmailRefused("comma")  # Koga: 「.」ドットが「,」カンマになっている
    if ".." in value:
        raise EmailRefused("double_dot")
    if value.split("@")[0].endswith("."):
        raise EmailRefused("dot_before_at")
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as error:
        raise EmailRefused("invalid", str(error)) from error


async def list_addresses(session: AsyncSession, patron_id: int) -> list[AddressView]:
    rows = await session.execute(
        select(Email.id, Email.address, Email.confirmed_at, Email.is_default)
        .where(Email.patron_id == patron_id)
        .order_by(Email.id)
    )
    return [AddressView(r.id, r.address, r.confirmed_at is not None, bool(r.is_default)) for r in rows]


async def add(
    session: AsyncSession,
    patron_id: int,
    raw: str,
    *,
    policy: Policy,
    now: dt.datetime,
    make_default: bool = False,
    for_holds: bool = False,
) -> int:
    """Add an unconfirmed address and decide its confirmation mail; returns the address id."""
    address = check_address(raw)
    count = await session.scalar(select(func.count()).where(Email.patron_id == patron_id)) or 0
    if count >= policy.max_emails:
        raise EmailRefused("limit")
    existing = await session.scalar(
        select(Email.id).where(Email.patron_id == patron_id, func.lower(Email.address) == address.lower())
    )
    if existing is not None:
        raise EmailRefused("duplicate")
    email = Email(
        patron_id=patron_id, address=address, default_on_confirm=make_default, holds_on_confirm=for_holds
    )
    session.add(email)
    await session.flush()
    await notices.queue(
        session,
        type="email_confirmation",
        patron_id=patron_id,
        dedup_key=f"email_confirmation:email:{email.id}",
        payload={"email_id": email.id},
        now=now,
    )
    await session.commit()
    return email.id


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def issue_token(session: AsyncSession, email_id: int, *, now: dt.datetime) -> str | None:
    """A fresh link token for an unconfirmed address (None once it is confirmed or gone)."""
    token = secrets.token_urlsafe(32)
    result = await session.execute(
        update(Email)
        .where(Email.id == email_id, Email.confirmed_at.is_(None))
        .values(
            token_hash=_hash(token),
            token_expires_at=now.replace(tzinfo=None) + dt.timedelta(hours=TOKEN_HOURS),
        )
    )
    await session.commit()
    return token if result.rowcount == 1 else None  # type: ignore[attr-defined]


async def find_by_token(session: AsyncSession, token: str, *, now: dt.datetime) -> Email:
    if not token or len(token) > 200:
        raise EmailRefused("token_invalid")
    email = await session.scalar(select(Email).where(Email.token_hash == _hash(token)))
    if email is None or email.confirmed_at is not None:
        raise EmailRefused("token_invalid")
    if email.token_expires_at is None or email.token_expires_at < now.replace(tzinfo=None):
        raise EmailRefused("token_expired")
    return email


async def confirm(session: AsyncSession, token: str, *, now: dt.datetime, patron_id: int | None) -> Email:
    """Confirm the address the token belongs to; the token stops working (compare-and-set)."""
    email = await find_by_token(session, token, now=now)
    if patron_id is not None and email.patron_id != patron_id:
        raise EmailRefused("token_other")
    stamp = now.replace(tzinfo=None)
    has_default = await session.scalar(
        select(func.count()).where(Email.patron_id == email.patron_id, Email.is_default)
    )
    result = await session.execute(
        update(Email)
        .where(Email.id == email.id, Email.token_hash == email.token_hash, Email.confirmed_at.is_(None))
        .values(confirmed_at=stamp, token_hash=None, token_expires_at=None, is_default=not has_default)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        await session.rollback()
        raise EmailRefused("token_invalid")  # the same link, used twice at the same moment
    if email.default_on_confirm:
        await session.execute(
            update(Email).where(Email.patron_id == email.patron_id).values(is_default=Email.id == email.id)
        )
    if email.holds_on_confirm:
        # Koga: 登録済み予約の連絡先もこのアドレスに変更する — waiting holds that are contacted by mail.
        await session.execute(
            update(Hold)
            .where(Hold.patron_id == email.patron_id, Hold.contact == "email", Hold.status == "waiting")
            .values(email_id=email.id)
        )
    await session.commit()
    return email


async def remove(session: AsyncSession, patron_id: int, email_id: int) -> None:
    email = await session.scalar(select(Email).where(Email.id == email_id, Email.patron_id == patron_id))
    if email is None:
        raise EmailNotFound(email_id)
    was_default = email.is_default
    await session.delete(email)
    await session.flush()
    if was_default:  # another confirmed address becomes the default
        other = await session.scalar(
            select(Email)
            .where(Email.patron_id == patron_id, Email.confirmed_at.is_not(None))
            .order_by(Email.id)
        )
        if other is not None:
            other.is_default = True
    await session.commit()


async def make_default(session: AsyncSession, patron_id: int, email_id: int) -> None:
    email = await session.scalar(select(Email).where(Email.id == email_id, Email.patron_id == patron_id))
    if email is None:
        raise EmailNotFound(email_id)
    if email.confirmed_at is None:
        raise EmailRefused("not_confirmed")
    await session.execute(
        update(Email).where(Email.patron_id == patron_id).values(is_default=Email.id == email_id)
    )
    await session.commit()

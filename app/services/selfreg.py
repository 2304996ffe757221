"""Online self-registration (Yokohama): apply → confirm the address → upload identity documents →
staff approve (a card number is issued) or reject; the documents are deleted after the review.

Uploads are checked by their content with Pillow, never by their name: only GIF, JPEG and PNG, at
most 3 MB and 40 megapixels (decompression bombs are refused), re-encoded so no metadata survives,
stored under random names outside app/static and shown only to staff.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import io
import secrets
import unicodedata
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.i18n import N_
from app.models import Email, Patron, Registration, RegistrationDocument
from app.policy import Policy
from app.services import notices, passwords
from app.services.emails import EmailRefused, check_address
from app.services.ratelimit import Limit, RateLimiter
from app.services.registration import IdentityRefused, normalize_kana, parse_birth

MAX_FILES = 2
MAX_BYTES = 3 * 1024 * 1024
MAX_PIXELS = 40_000_000
FORMATS = {"GIF": "image/gif", "JPEG": "image/jpeg", "PNG": "image/png"}
ELIGIBILITY = ("live", "work", "study")
TOKEN_HOURS = 24
# Applications (and repeats of one) a client may send in an hour: each one mails a link, so without
# a limit the form would mail anyone's address on an attacker's behalf.
APPLY_PER_CLIENT = Limit("register-client", 10, 60 * 60)

MESSAGES = {
    "eligibility": N_("Please say whether you live, work or study in the city."),
    "name": N_("Please enter your name (up to 100 characters)."),
    "address": N_("Please enter your address (up to 300 characters)."),
    "phone": N_("Please enter a phone number of 10 or 11 digits."),
    "no_files": N_("Please choose one or two image files."),
    "too_many": N_("You can upload at most 2 files."),
    "too_big": N_("Each file must be at most 3 MB."),
    "not_image": N_(
        "Only GIF, JPEG or PNG images can be uploaded (the file's content is checked, not its name)."
    ),
    "too_many_pixels": N_("This image is too large in pixels. Please send a smaller photo or scan."),
    "token_invalid": N_("This confirmation link is not valid. It may have been used already."),
    "token_expired": N_("This confirmation link has expired. Please apply again."),
    "not_reviewable": N_("This application has already been reviewed."),
    "reason": N_("Please give a reason for the rejection."),
    "rate_limited": N_("Too many applications from this connection. Please try again in an hour."),
}


class RegistrationRefused(ValueError):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Application:
    eligibility: str
    name: str
    kana: str
    birth: str
    address: str
    phone: str
    email: str
    password: str
    confirm: str
    lang: str


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def apply(
    session: AsyncSession,
    form: Application,
    *,
    policy: Policy,
    today: dt.date,
    limiter: RateLimiter | None = None,
    client: str = "",
) -> int:
    """Check every field (the first mistake is named), keep the application, decide the link mail.

    Posting the same application again keeps one application and answers as if it were new.
    """
    if form.eligibility not in ELIGIBILITY:
        raise RegistrationRefused("eligibility")
    name = " ".join(unicodedata.normalize("NFC", form.name).split())
    if not name or len(name) > 100:
        raise RegistrationRefused("name")
    kana = normalize_kana(form.kana[:100])
    birth = parse_birth(form.birth[:20], today)
    address = " ".join(unicodedata.normalize("NFC", form.address).split())
    if not address or len(address) > 300:
        raise RegistrationRefused("address")
    phone = "".join(ch for ch in unicodedata.normalize("NFKC", form.phone) if ch.isdigit())
    if len(phone) not in (10, 11):
        raise RegistrationRefused("phone")
    email = check_address(form.email[:300])
    if form.password != form.confirm:
        raise passwords.PasswordRuleBroken("mismatch")
    if len(form.password) > passwords.MAX_PASSWORD_INPUT:
        raise passwords.PasswordRuleBroken(
            "length", min=policy.password_min_length, max=policy.password_max_length
        )
    passwords.check_password_rules(policy, form.password)
    if limiter is not None:
        if await limiter.exceeded(APPLY_PER_CLIENT, client):
            raise RegistrationRefused("rate_limited")
        await limiter.hit(APPLY_PER_CLIENT, client)
    # Hashed before the look for an earlier application, so a repeat takes as long as a new one.
    password_hash = await passwords.hash_password(form.password)
    earlier = (
        await session.execute(
            select(Registration.id, Registration.status).where(
                Registration.email == email,
                Registration.birth_date == birth,
                Registration.status.in_(("email_pending", "documents", "submitted")),
            )
        )
    ).first()
    if earlier is not None:
        # The same application again (a double click, or the mail was lost): one application, and
        # the same answer as a new one, so the form never tells whether someone has applied. Still
        # waiting for its link: the link is mailed again (at most once a day).
        if earlier.status == "email_pending":
            again = f"registration_confirm:{earlier.id}:again:{today.isoformat()}"
            await _queue_link(session, earlier.id, again)
        await session.commit()
        return int(earlier.id)
    duplicate = await _duplicate_note(session, name, kana, birth, phone)
    registration = Registration(
        eligibility=form.eligibility,
        name=name,
        name_kana=kana,
        birth_date=birth,
        address=address,
        phone=phone,
        email=email,
        lang=form.lang,
        password_hash=password_hash,
        duplicate_note=duplicate,
    )
    session.add(registration)
    await session.flush()
    await _queue_link(session, registration.id, f"registration_confirm:{registration.id}")
    await session.commit()
    return registration.id


async def _queue_link(session: AsyncSession, registration_id: int, dedup_key: str) -> None:
    """The mail with the applicant's confirmation link (the worker makes the link when it sends)."""
    await notices.queue(
        session,
        type="registration_confirm",
        patron_id=None,
        registration_id=registration_id,
        dedup_key=dedup_key,
        payload={"registration_id": registration_id},
    )


async def _duplicate_note(session: AsyncSession, name: str, kana: str, birth: dt.date, phone: str) -> str:
    """Staff are told about an existing patron or another application with the same person's details."""
    patron = await session.scalar(
        select(Patron.card_number).where(
            Patron.birth_date == birth,
            (func.replace(func.replace(Patron.phone, "-", ""), " ", "") == phone)
            | (Patron.name_kana == kana),
        )
    )
    if patron:
        return f"patron {patron}"
    other = await session.scalar(
        select(Registration.id).where(
            Registration.birth_date == birth, Registration.phone == phone, Registration.status != "rejected"
        )
    )
    return f"application {other}" if other else ""


async def issue_token(session: AsyncSession, registration_id: int, *, now: dt.datetime) -> str | None:
    token = secrets.token_urlsafe(32)
    result = await session.execute(
        update(Registration)
        .where(Registration.id == registration_id, Registration.status == "email_pending")
        .values(
            token_hash=_hash(token),
            token_expires_at=now.replace(tzinfo=None) + dt.timedelta(hours=TOKEN_HOURS),
        )
    )
    await session.commit()
    return token if result.rowcount == 1 else None  # type: ignore[attr-defined]


async def find_by_token(session: AsyncSession, token: str, *, now: dt.datetime) -> Registration:
    if not token or len(token) > 200:
        raise RegistrationRefused("token_invalid")
    registration = await session.scalar(select(Registration).where(Registration.token_hash == _hash(token)))
    if registration is None or registration.status != "email_pending":
        raise RegistrationRefused("token_invalid")
    if registration.token_expires_at is None or registration.token_expires_at < now.replace(tzinfo=None):
        raise RegistrationRefused("token_expired")
    return registration


async def confirm_email(session: AsyncSession, token: str, *, now: dt.datetime) -> int:
    registration = await find_by_token(session, token, now=now)
    result = await session.execute(
        update(Registration)
        .where(Registration.id == registration.id, Registration.status == "email_pending")
        .values(status="documents", token_hash=None, token_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise RegistrationRefused("token_invalid")
    await session.commit()
    return registration.id


def clean_image(data: bytes) -> tuple[bytes, str, str]:
    """Re-encoded image bytes without metadata, its content type and extension; or RegistrationRefused."""
    if len(data) > MAX_BYTES:
        raise RegistrationRefused("too_big")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            probe = Image.open(io.BytesIO(data))
            if probe.format not in FORMATS:
                raise RegistrationRefused("not_image")
            if probe.width * probe.height > MAX_PIXELS:
                raise RegistrationRefused("too_many_pixels")
            probe.verify()
            image = Image.open(io.BytesIO(data))
            image.load()
    except RegistrationRefused:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise RegistrationRefused("too_many_pixels") from exc
    except (
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
    ) as exc:
        raise RegistrationRefused("not_image") from exc
    fmt = image.format or probe.format
    out = io.BytesIO()
    # Saving without exif/pnginfo drops every metadata block (location, camera, comments).
    if fmt == "JPEG":
        image.convert("RGB").save(out, format="JPEG", quality=90)
    else:
        image.save(out, format=fmt)
    return out.getvalue(), FORMATS[fmt], fmt.lower().replace("jpeg", "jpg")


async def add_documents(
    session: AsyncSession, registration_id: int, files: list[bytes], *, upload_dir: Path, now: dt.datetime
) -> None:
    """Store the documents (all checked first: one bad file stores nothing) and submit the application."""
    registration = await session.get(Registration, registration_id)
    if registration is None or registration.status != "documents":
        raise RegistrationRefused("not_reviewable")
    if not files:
        raise RegistrationRefused("no_files")
    if len(files) > MAX_FILES:
        raise RegistrationRefused("too_many")
    # Decoding images is CPU work and writing files blocks: both leave the event loop.
    cleaned = await asyncio.to_thread(lambda: [clean_image(data) for data in files])
    stored = await asyncio.to_thread(_store, upload_dir, [(data, ext) for data, _, ext in cleaned])
    for name, (data, content_type, _) in zip(stored, cleaned, strict=True):
        session.add(
            RegistrationDocument(
                registration_id=registration_id, stored_name=name, content_type=content_type, size=len(data)
            )
        )
    registration.status = "submitted"
    await notices.queue(
        session,
        type="registration_received",
        patron_id=None,
        registration_id=registration_id,
        dedup_key=f"registration_received:{registration_id}",
        payload={},
        now=now,
    )
    await session.commit()


def _store(upload_dir: Path, files: list[tuple[bytes, str]]) -> list[str]:
    upload_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    names = []
    for data, ext in files:
        name = f"{secrets.token_hex(16)}.{ext}"
        (upload_dir / name).write_bytes(data)
        names.append(name)
    return names


def _unlink(upload_dir: Path, names: list[str]) -> None:
    for name in names:
        (upload_dir / name).unlink(missing_ok=True)


async def next_card_number(session: AsyncSession, policy: Policy) -> str:
    """The next free number in the policy's pattern (prefix + digits), above every existing card."""
    prefix, width = policy.card_prefix, policy.card_length - len(policy.card_prefix)
    numbers = (
        await session.scalars(select(Patron.card_number).where(Patron.card_number.like(f"{prefix}%")))
    ).all()
    used = [
        int(n[len(prefix) :]) for n in numbers if len(n) == policy.card_length and n[len(prefix) :].isdigit()
    ]
    candidate = max(used, default=0) + 1
    if candidate >= 10**width:
        raise RuntimeError("card numbers exhausted for this prefix")
    return f"{prefix}{candidate:0{width}d}"


async def _forget_documents(session: AsyncSession, registration_id: int) -> list[str]:
    """Delete the documents' rows; returns their files, which the caller unlinks once it has
    committed: nothing but the database is awaited inside a write transaction (README), and a
    rolled-back review keeps its documents."""
    docs = (
        await session.scalars(
            select(RegistrationDocument).where(RegistrationDocument.registration_id == registration_id)
        )
    ).all()
    for doc in docs:
        await session.delete(doc)
    return [doc.stored_name for doc in docs]


async def approve(
    session: AsyncSession,
    registration_id: int,
    *,
    staff_id: int,
    policy: Policy,
    today: dt.date,
    upload_dir: Path,
    now: dt.datetime,
) -> str:
    """Create the patron (card number by the policy), mail it, delete the documents; returns the number."""
    registration = await session.get(Registration, registration_id)
    if registration is None or registration.status != "submitted":
        raise RegistrationRefused("not_reviewable")
    card = await next_card_number(session, policy)
    patron = Patron(
        card_number=card,
        card_expires_on=today.replace(year=today.year + 3),
        name=registration.name,
        name_kana=registration.name_kana,
        birth_date=registration.birth_date,
        phone=registration.phone,
        address=registration.address,
        password_hash=registration.password_hash,
        password_state="permanent",
        lang=registration.lang,
    )
    session.add(patron)
    await session.flush()
    session.add(
        Email(
            patron_id=patron.id,
            address=registration.email,
            confirmed_at=now.replace(tzinfo=None),
            is_default=True,
        )
    )
    registration.status, registration.patron_id = "approved", patron.id
    registration.reviewed_by, registration.reviewed_at = staff_id, now.replace(tzinfo=None)
    files = await _forget_documents(session, registration_id) if policy.document_retention_days == 0 else []
    await notices.queue(
        session,
        type="registration_completed",
        patron_id=patron.id,
        registration_id=registration_id,
        dedup_key=f"registration_completed:{registration_id}",
        payload={"card_number": card},
        now=now,
    )
    await session.commit()
    await asyncio.to_thread(_unlink, upload_dir, files)
    return card


async def reject(
    session: AsyncSession,
    registration_id: int,
    reason: str,
    *,
    staff_id: int,
    upload_dir: Path,
    now: dt.datetime,
    policy: Policy,
) -> None:
    reason = " ".join(reason.split())[:500]
    if not reason:
        raise RegistrationRefused("reason")
    registration = await session.get(Registration, registration_id)
    if registration is None or registration.status != "submitted":
        raise RegistrationRefused("not_reviewable")
    registration.status, registration.reject_reason = "rejected", reason
    registration.reviewed_by, registration.reviewed_at = staff_id, now.replace(tzinfo=None)
    files = await _forget_documents(session, registration_id) if policy.document_retention_days == 0 else []
    await notices.queue(
        session,
        type="registration_rejected",
        patron_id=None,
        registration_id=registration_id,
        dedup_key=f"registration_rejected:{registration_id}",
        payload={"reason": reason},
        now=now,
    )
    await session.commit()
    await asyncio.to_thread(_unlink, upload_dir, files)


async def purge_documents(
    session: AsyncSession, *, policy: Policy, upload_dir: Path, now: dt.datetime
) -> int:
    """Delete documents of applications reviewed more than the policy's retention days ago (daily job)."""
    cutoff = now.replace(tzinfo=None) - dt.timedelta(days=policy.document_retention_days)
    ids = (
        await session.scalars(
            select(Registration.id).where(
                Registration.status.in_(("approved", "rejected")),
                Registration.reviewed_at <= cutoff,
                Registration.id.in_(select(RegistrationDocument.registration_id)),
            )
        )
    ).all()
    files = [name for registration_id in ids for name in await _forget_documents(session, registration_id)]
    await session.commit()
    await asyncio.to_thread(_unlink, upload_dir, files)
    return len(ids)


__all__ = ["EmailRefused", "IdentityRefused"]

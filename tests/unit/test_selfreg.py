"""Online self-registration end to end: real mail, real uploads checked by content, staff review."""

from __future__ import annotations

import io
import re
import zlib
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient
from PIL import Image
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import make_engine, make_sessionmaker
from app.models import Notice, Patron, Registration, RegistrationDocument
from app.services import selfreg
from app.tasks.mailer import deliver_pending
from tests.unit.conftest import csrf_from, login, make_settings
from tests.unit.test_staff_routes import staff_login

FORM = {
    "eligibility": "work",
    "name": "田村 明",
    "kana": "タムラ アキラ",
    "birth": "19850505",
    "address": "福岡市中央区天神1-1-1",
    "phone": "092-123-4567",
    "email": "akira@example.jp",
    "password": "akira2026",
    "confirm_password": "akira2026",
}


def png(width: int = 40, height: int = 30, **info: str) -> bytes:
    image = Image.new("RGB", (width, height), "white")
    out = io.BytesIO()
    from PIL import PngImagePlugin

    meta = PngImagePlugin.PngInfo()
    for key, value in info.items():
        meta.add_text(key, value)
    image.save(out, format="PNG", pnginfo=meta)
    return out.getvalue()


def jpeg_with_exif() -> bytes:
    image = Image.new("RGB", (40, 30), "white")
    exif = Image.Exif()
    exif[0x010F] = "SecretCameraMaker"
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif)
    return out.getvalue()


def png_bomb() -> bytes:
    """A 20 000 × 20 000 PNG of a few KB (one grey row repeated)."""
    width = height = 20_000
    raw = (b"\x00" + b"\x00" * width) * height
    data = zlib.compress(raw, 9)

    def chunk(kind: bytes, body: bytes) -> bytes:
        import struct

        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    import struct

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n", "not_image"),
        (b"<!doctype html><script>alert(1)</script>", "not_image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * (3 * 1024 * 1024), "too_big"),
    ],
)
def test_uploads_are_checked_by_content(data: bytes, reason: str) -> None:
    with pytest.raises(selfreg.RegistrationRefused) as problem:
        selfreg.clean_image(data)
    assert problem.value.reason == reason


def test_decompression_bomb_is_refused() -> None:
    bomb = png_bomb()
    assert len(bomb) < 1024 * 1024
    with pytest.raises(selfreg.RegistrationRefused) as problem:
        selfreg.clean_image(bomb)
    assert problem.value.reason == "too_many_pixels"


def test_metadata_is_stripped() -> None:
    cleaned, content_type, _ = selfreg.clean_image(png(Comment="home address"))
    assert content_type == "image/png" and b"home address" not in cleaned
    cleaned, content_type, ext = selfreg.clean_image(jpeg_with_exif())
    assert (content_type, ext) == ("image/jpeg", "jpg") and b"SecretCameraMaker" not in cleaned


async def _send(database_url: str, namespace: str, tmp_path: Path, port: int) -> None:
    settings = make_settings(
        database_url,
        namespace,
        tmp_path,
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=str(port),
        BASE_URL="http://testserver.local",
    )
    await deliver_pending(make_sessionmaker(make_engine(database_url)), settings)


def _body(message) -> str:  # type: ignore[no-untyped-def]
    return message.get_body(("plain",)).get_content()


async def test_apply_confirm_upload_approve_and_log_in(
    client: AsyncTestClient,
    db: AsyncSession,
    database_url: str,
    namespace: str,
    tmp_path: Path,
    smtp,
    settings,
) -> None:  # type: ignore[no-untyped-def]
    controller, inbox = smtp
    page = await client.get("/register?lang=en")
    assert ">Register online</button>" in page.text
    csrf = csrf_from(page.text)
    done = await client.post("/register", data={"_csrf_token": csrf, **FORM}, follow_redirects=False)
    assert done.status_code == 303
    await _send(database_url, namespace, tmp_path, controller.port)
    rcpt, message = inbox.messages[-1]
    assert rcpt == ["akira@example.jp"]
    link = re.search(r"http://testserver\.local(/register/confirm\?token=[\w-]+)", _body(message))
    assert link
    opened = await client.get(link.group(1))
    assert ">Confirm</button>" in opened.text
    token = link.group(1).split("token=")[1]
    confirmed = await client.post(
        "/register/confirm", data={"_csrf_token": csrf, "token": token}, follow_redirects=False
    )
    assert confirmed.headers["location"] == "/register/documents"
    reused = await client.post("/register/confirm", data={"_csrf_token": csrf, "token": token})
    assert reused.status_code == 400
    # A PDF named .png, then three files, then a good upload.
    bad = await client.post(
        "/register/documents",
        data={"_csrf_token": csrf},
        files=[("documents", ("id.png", b"%PDF-1.7 fake", "image/png"))],
    )
    assert bad.status_code == 400 and "content is checked" in bad.text
    three = await client.post(
        "/register/documents",
        data={"_csrf_token": csrf},
        files=[("documents", (f"{n}.png", png(), "image/png")) for n in range(3)],
    )
    assert three.status_code == 400 and "at most 2 files" in three.text
    good = await client.post(
        "/register/documents",
        data={"_csrf_token": csrf},
        files=[("documents", ("licence.jpg", jpeg_with_exif(), "image/jpeg"))],
    )
    assert good.status_code == 200 and "We have received your documents" in good.text
    registration = await db.scalar(select(Registration).where(Registration.email == "akira@example.jp"))
    assert registration is not None and registration.status == "submitted"
    doc = await db.scalar(
        select(RegistrationDocument).where(RegistrationDocument.registration_id == registration.id)
    )
    assert doc is not None
    stored = settings.var_dir / "uploads" / doc.stored_name
    assert stored.exists() and b"SecretCameraMaker" not in stored.read_bytes()
    assert (await client.get(f"/static/{doc.stored_name}")).status_code == 404  # never public
    await _send(database_url, namespace, tmp_path, controller.port)
    assert "We have received your documents" in inbox.messages[-1][1]["Subject"]  # the applicant's language
    # Staff review: see the document, approve.
    await staff_login(client)
    queue = await client.get("/staff/registrations")
    assert "田村 明" in queue.text
    review = await client.get(f"/staff/registrations/{registration.id}")
    assert ">Approve</button>" in review.text and ">Reject</button>" in review.text
    image = await client.get(f"/staff/registrations/{registration.id}/documents/{doc.id}")
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
    csrf = csrf_from(review.text)
    await client.post(f"/staff/registrations/{registration.id}/approve", data={"_csrf_token": csrf})
    patron = await db.scalar(select(Patron).where(Patron.name == "田村 明"))
    assert patron is not None and re.fullmatch(r"\d{9}", patron.card_number)
    assert not stored.exists()  # documents deleted after the review
    await _send(database_url, namespace, tmp_path, controller.port)
    assert patron.card_number in _body(inbox.messages[-1][1])
    await client.post("/staff/logout", data={"_csrf_token": csrf})
    assert (await login(client, card=patron.card_number, password="akira2026")).status_code == 303


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("eligibility", "visit", "live, work or study"),
        ("kana", "たむら あきら", "not hiragana"),
        ("birth", "1985/5/5", "8 digits"),
        ("birth", "20900101", "8 digits"),
        ("phone", "12", "10 or 11 digits"),
        ("email", "akira@example,jp", "comma"),
        ("confirm_password", "other", "do not match"),
        ("name", "x" * 10_000, "up to 100"),
    ],
)
async def test_application_mistakes_are_named(
    client: AsyncTestClient, db: AsyncSession, field: str, value: str, message: str
) -> None:
    page = await client.get("/register?lang=en")
    response = await client.post(
        "/register", data={"_csrf_token": csrf_from(page.text), **FORM, field: value}
    )
    assert response.status_code == 400 and message in response.text
    assert await db.scalar(select(Registration.id)) is None


async def test_duplicate_application_is_flagged(client: AsyncTestClient, db: AsyncSession) -> None:
    page = await client.get("/register?lang=en")
    ken = {**FORM, "name": "山本 健", "kana": "ヤマモト ケン", "birth": "19900401", "phone": "092-000-0000"}
    await client.post("/register", data={"_csrf_token": csrf_from(page.text), **ken})
    note = await db.scalar(select(Registration.duplicate_note))
    assert note == "patron 100000058"


async def test_reject_mails_the_reason(
    client: AsyncTestClient,
    db: AsyncSession,
    database_url: str,
    namespace: str,
    tmp_path: Path,
    smtp,
    settings,
) -> None:  # type: ignore[no-untyped-def]
    controller, inbox = smtp
    from app import clock

    registration_id = await selfreg.apply(
        db,
        selfreg.Application(
            **{k: v for k, v in FORM.items() if k not in ("password", "confirm_password")},
            password="akira2026",
            confirm="akira2026",
            lang="en",
        ),
        policy=__import__("app.policy", fromlist=["x"]).load_policy("default"),
        today=clock.today(),
    )
    await db.execute(Registration.__table__.update().values(status="documents"))
    await db.commit()
    await selfreg.add_documents(
        db, registration_id, [png()], upload_dir=settings.var_dir / "uploads", now=clock.now()
    )
    await staff_login(client)
    review = await client.get(f"/staff/registrations/{registration_id}")
    csrf = csrf_from(review.text)
    empty = await client.post(
        f"/staff/registrations/{registration_id}/reject", data={"_csrf_token": csrf, "reason": " "}
    )
    assert empty.status_code in (200, 303)
    await client.post(
        f"/staff/registrations/{registration_id}/reject",
        data={"_csrf_token": csrf, "reason": "The address on the document differs."},
    )
    assert (
        await db.scalar(select(Registration.status).execution_options(populate_existing=True))
    ) == "rejected"
    assert await db.scalar(select(RegistrationDocument.id)) is None
    await _send(database_url, namespace, tmp_path, controller.port)
    assert "The address on the document differs." in _body(inbox.messages[-1][1])


async def test_patrons_cannot_see_the_review_queue(client: AsyncTestClient) -> None:
    await login(client)
    assert (await client.get("/staff/registrations", follow_redirects=False)).status_code == 403


async def test_documents_kept_for_the_policy_days_then_purged(db: AsyncSession, tmp_path: Path) -> None:
    import datetime as dt

    from app import clock
    from app.policy import load_policy

    path = tmp_path / "keep.toml"
    path.write_text("document_retention_days = 30\n")
    policy = load_policy(str(path))
    registration_id = await selfreg.apply(
        db,
        selfreg.Application(
            eligibility="live",
            name="田村 明",
            kana="タムラ アキラ",
            birth="19850505",
            address="福岡市",
            phone="0921234567",
            email="a@example.jp",
            password="akira2026",
            confirm="akira2026",
            lang="ja",
        ),
        policy=policy,
        today=clock.today(),
    )
    await db.execute(Registration.__table__.update().values(status="documents"))
    await db.commit()
    uploads = tmp_path / "uploads"
    await selfreg.add_documents(db, registration_id, [png()], upload_dir=uploads, now=clock.now())
    await selfreg.approve(
        db,
        registration_id,
        staff_id=1,
        policy=policy,
        today=clock.today(),
        upload_dir=uploads,
        now=clock.now(),
    )
    assert len(list(uploads.iterdir())) == 1  # kept after review
    assert await selfreg.purge_documents(db, policy=policy, upload_dir=uploads, now=clock.now()) == 0
    later = clock.now() + dt.timedelta(days=31)
    assert await selfreg.purge_documents(db, policy=policy, upload_dir=uploads, now=later) == 1
    assert list(uploads.iterdir()) == [] and await db.scalar(select(RegistrationDocument.id)) is None


async def test_the_same_form_posted_twice_is_one_application_and_the_same_answer(
    client: AsyncTestClient, db: AsyncSession
) -> None:
    page = await client.get("/register?lang=en")
    csrf = csrf_from(page.text)
    first = await client.post("/register", data={"_csrf_token": csrf, **FORM}, follow_redirects=False)
    second = await client.post("/register", data={"_csrf_token": csrf, **FORM}, follow_redirects=False)
    # The form never tells whether someone with these details has applied: the same redirect.
    assert first.status_code == second.status_code == 303
    assert first.headers["location"] == second.headers["location"]
    assert len((await db.scalars(select(Registration.id))).all()) == 1
    # The link is mailed again for the waiting application (once a day, however often it is posted).
    third = await client.post("/register", data={"_csrf_token": csrf, **FORM}, follow_redirects=False)
    assert third.status_code == 303
    links = (await db.scalars(select(Notice.dedup_key).where(Notice.type == "registration_confirm"))).all()
    assert len(links) == 2


async def test_applications_are_rate_limited_per_client(client: AsyncTestClient, db: AsyncSession) -> None:
    csrf = csrf_from((await client.get("/register?lang=en")).text)
    answers = []
    for n in range(selfreg.APPLY_PER_CLIENT.attempts + 1):
        form = {**FORM, "email": f"applicant{n}@example.jp"}
        response = await client.post("/register", data={"_csrf_token": csrf, **form}, follow_redirects=False)
        answers.append(response.status_code)
    assert answers == [303] * selfreg.APPLY_PER_CLIENT.attempts + [429]
    assert "Too many applications" in response.text
    assert len((await db.scalars(select(Registration.id))).all()) == selfreg.APPLY_PER_CLIENT.attempts

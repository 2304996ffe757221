"""Online self-registration (Yokohama) for applicants, and the staff review queue."""

from __future__ import annotations

import asyncio

from litestar import Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromQuery
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app import clock
from app.i18n import get_language, gettext
from app.models import Registration, RegistrationDocument
from app.policy import Policy
from app.routes._deps import RecordId
from app.routes._render import flash, redirect, render
from app.routes.staff import StaffSession
from app.services import selfreg
from app.services.emails import MESSAGES as EMAIL_MESSAGES
from app.services.emails import EmailRefused
from app.services.passwords import RULE_MESSAGES, PasswordRuleBroken
from app.services.registration import MESSAGES as IDENTITY_MESSAGES
from app.services.registration import IdentityRefused
from app.tasks.queue import kick_mailer

UPLOAD_LIMIT = 8 * 1024 * 1024  # two files of 3 MB and the form around them


def _msg(table: dict[str, str], key: str, **params: object) -> str:
    text = table[key]
    return gettext(text, **params)


@get("/register", name="register:form")
async def form_page(request: Request) -> object:
    return render(request, "register/form.html", error=None, values={})


@post("/register", name="register:apply")
async def apply(
    request: Request, db: NamedDependency[AsyncSession], policy: NamedDependency[Policy]
) -> object:
    form = await request.form()
    values = {
        k: str(form.get(k, ""))[:400]
        for k in ("eligibility", "name", "kana", "birth", "address", "phone", "email")
    }
    application = selfreg.Application(
        **values,
        password=str(form.get("password", ""))[:200],
        confirm=str(form.get("confirm_password", ""))[:200],
        lang=get_language(),
    )
    status = 400
    try:
        await selfreg.apply(
            db,
            application,
            policy=policy,
            today=clock.today(),
            limiter=request.app.state.limiter,
            client=request.client.host if request.client else "unknown",
        )
    except selfreg.RegistrationRefused as problem:
        error = _msg(selfreg.MESSAGES, problem.reason)
        status = 429 if problem.reason == "rate_limited" else 400
    except IdentityRefused as problem:
        error = _msg(IDENTITY_MESSAGES, problem.reason)
    except EmailRefused as problem:
        error = _msg(EMAIL_MESSAGES, problem.reason, detail=problem.detail, max=policy.max_emails)
    except PasswordRuleBroken as broken:
        error = _msg(RULE_MESSAGES, broken.rule, **broken.params)
    else:
        await kick_mailer(request.app.state.arq, request.app.state.settings.redis_namespace)
        return redirect(request.app.route_reverse("register:sent"))
    await db.rollback()
    return render(request, "register/form.html", status_code=status, error=error, values=values)


@get("/register/sent", name="register:sent")
async def sent_page(request: Request) -> object:
    return render(request, "register/sent.html")


@get("/register/confirm", name="register:confirm_page")
async def confirm_page(
    request: Request, db: NamedDependency[AsyncSession], token: FromQuery[str] = ""
) -> object:
    try:
        await selfreg.find_by_token(db, token[:200], now=clock.now())
    except selfreg.RegistrationRefused as problem:
        return render(
            request,
            "register/confirm.html",
            status_code=400,
            token="",
            error=_msg(selfreg.MESSAGES, problem.reason),
        )
    return render(request, "register/confirm.html", token=token[:200], error=None)


@post("/register/confirm", name="register:confirm")
async def confirm(request: Request, db: NamedDependency[AsyncSession]) -> object:
    form = await request.form()
    try:
        registration_id = await selfreg.confirm_email(db, str(form.get("token", ""))[:200], now=clock.now())
    except selfreg.RegistrationRefused as problem:
        return render(
            request,
            "register/confirm.html",
            status_code=400,
            token="",
            error=_msg(selfreg.MESSAGES, problem.reason),
        )
    request.session["registration"] = registration_id
    return redirect(request.app.route_reverse("register:documents"))


@get("/register/documents", name="register:documents")
async def documents_page(request: Request) -> object:
    if not request.session.get("registration"):
        return redirect(request.app.route_reverse("register:form"))
    return render(request, "register/documents.html", error=None, done=False)


@post("/register/documents", name="register:upload", request_max_body_size=UPLOAD_LIMIT)
async def upload(request: Request, db: NamedDependency[AsyncSession]) -> object:
    registration_id = request.session.get("registration")
    if not registration_id:
        return redirect(request.app.route_reverse("register:form"))
    form = await request.form()
    uploads = (
        [f for f in form.getall("documents") if isinstance(f, UploadFile) and f.filename]
        if "documents" in form
        else []
    )
    try:
        if len(uploads) > selfreg.MAX_FILES:
            raise selfreg.RegistrationRefused("too_many")
        files = [await f.read(selfreg.MAX_BYTES + 1) for f in uploads]
        await selfreg.add_documents(
            db, int(registration_id), files, upload_dir=_upload_dir(request), now=clock.now()
        )
    except selfreg.RegistrationRefused as problem:
        await db.rollback()
        return render(
            request,
            "register/documents.html",
            status_code=400,
            done=False,
            error=_msg(selfreg.MESSAGES, problem.reason),
        )
    request.session.pop("registration", None)
    await kick_mailer(request.app.state.arq, request.app.state.settings.redis_namespace)
    return render(request, "register/documents.html", error=None, done=True)


def _upload_dir(request: Request):  # type: ignore[no-untyped-def]
    # Outside app/static, never served publicly: only the staff route below reads it.
    return request.app.state.settings.var_dir / "uploads"


# ---------------------------------------------------------------- staff review


@get("/staff/registrations", name="staff:registrations")
async def review_list(
    request: Request, staff: NamedDependency[StaffSession], db: NamedDependency[AsyncSession]
) -> object:
    rows = (
        await db.scalars(
            select(Registration).where(Registration.status == "submitted").order_by(Registration.id)
        )
    ).all()
    return render(request, "register/review_list.html", registrations=rows, staff=staff)


@get("/staff/registrations/{registration_id:int}", name="staff:registration")
async def review_page(
    request: Request,
    registration_id: RecordId,
    staff: NamedDependency[StaffSession],
    db: NamedDependency[AsyncSession],
) -> object:
    registration = await db.get(Registration, registration_id)
    if registration is None:
        raise NotFoundException()
    docs = (
        await db.scalars(
            select(RegistrationDocument).where(RegistrationDocument.registration_id == registration_id)
        )
    ).all()
    return render(request, "register/review.html", r=registration, documents=docs, staff=staff, error=None)


@get(
    "/staff/registrations/{registration_id:int}/documents/{document_id:int}",
    name="staff:registration_document",
)
async def review_document(
    request: Request,
    registration_id: RecordId,
    document_id: RecordId,
    staff: NamedDependency[StaffSession],
    db: NamedDependency[AsyncSession],
) -> Response[bytes]:
    doc = await db.scalar(
        select(RegistrationDocument).where(
            RegistrationDocument.id == document_id, RegistrationDocument.registration_id == registration_id
        )
    )
    if doc is None:
        raise NotFoundException()
    path = _upload_dir(request) / doc.stored_name
    data = await asyncio.to_thread(path.read_bytes)
    return Response(
        data,
        media_type=doc.content_type,
        headers={"Cache-Control": "no-store", "Content-Disposition": "inline"},
    )


@post("/staff/registrations/{registration_id:int}/approve", name="staff:registration_approve")
async def approve(
    request: Request,
    registration_id: RecordId,
    staff: NamedDependency[StaffSession],
    db: NamedDependency[AsyncSession],
    policy: NamedDependency[Policy],
) -> object:
    try:
        card = await selfreg.approve(
            db,
            registration_id,
            staff_id=staff.id,
            policy=policy,
            today=clock.today(),
            upload_dir=_upload_dir(request),
            now=clock.now(),
        )
    except selfreg.RegistrationRefused as problem:
        flash(request, _msg(selfreg.MESSAGES, problem.reason), "error")
        return redirect(request.app.route_reverse("staff:registrations"))
    await kick_mailer(request.app.state.arq, request.app.state.settings.redis_namespace)
    flash(request, gettext("Approved: card number %(card)s. The applicant has been mailed.", card=card), "ok")
    return redirect(request.app.route_reverse("staff:registrations"))


@post("/staff/registrations/{registration_id:int}/reject", name="staff:registration_reject")
async def reject(
    request: Request,
    registration_id: RecordId,
    staff: NamedDependency[StaffSession],
    db: NamedDependency[AsyncSession],
    policy: NamedDependency[Policy],
) -> object:
    form = await request.form()
    try:
        await selfreg.reject(
            db,
            registration_id,
            str(form.get("reason", ""))[:600],
            staff_id=staff.id,
            upload_dir=_upload_dir(request),
            now=clock.now(),
            policy=policy,
        )
    except selfreg.RegistrationRefused as problem:
        flash(request, _msg(selfreg.MESSAGES, problem.reason), "error")
        return redirect(request.app.route_reverse("staff:registration", registration_id=registration_id))
    await kick_mailer(request.app.state.arq, request.app.state.settings.redis_namespace)
    flash(request, gettext("Rejected. The applicant has been mailed the reason."), "ok")
    return redirect(request.app.route_reverse("staff:registrations"))

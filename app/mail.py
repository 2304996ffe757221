"""Mail: render a notice in the patron's language (text and HTML parts) and send it over SMTP.

The one place that talks SMTP. Only the worker calls send(); web requests never send mail.
"""

from __future__ import annotations

import datetime as dt
from email.message import EmailMessage
from email.utils import format_datetime
from functools import lru_cache
from pathlib import Path

import aiosmtplib
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from app import i18n
from app.i18n import N_
from app.services.notices import Outgoing
from app.settings import Settings

SUBJECTS = {
    "registration_confirm": N_(
        "[City Library] Please confirm your email address to continue your registration"
    ),
    "registration_received": N_("[City Library] We have received your documents"),
    "registration_completed": N_("[City Library] Your registration is complete"),
    "registration_rejected": N_("[City Library] About your registration"),
    "email_confirmation": N_("[City Library] Please confirm your email address"),
    "hold_accepted": N_("[City Library] Your hold was accepted"),
    "pickup_ready": N_("[City Library] Your hold is ready for pickup"),
    "hold_expired": N_("[City Library] Your hold was not collected and has been cancelled"),
    "due_reminder": N_("[City Library] Items due soon"),
    "overdue": N_("[City Library] Items overdue"),
    "card_expiry": N_("[City Library] Your library card expires soon"),
    "temporary_password": N_("[City Library] Your temporary password"),
    "new_arrivals": N_("[City Library] New arrivals for your alerts"),
    "library_news": N_("[City Library] Library news"),
}


@lru_cache(maxsize=1)
def _env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(Path(__file__).parent / "templates" / "mail"),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        extensions=["jinja2.ext.i18n"],
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=False)  # type: ignore[attr-defined]
    return env


def _date(value: object) -> str:
    if isinstance(value, str) and value:
        return i18n.format_date(dt.date.fromisoformat(value))
    return ""


def render(notice: Outgoing, settings: Settings) -> EmailMessage:
    """The message for one notice, in the patron's language (ja or en)."""
    i18n.set_language(notice.lang)
    context = {
        "n": notice,
        "p": notice.payload,
        "date": _date,
        "lang": notice.lang,
        "base_url": settings.base_url,
    }
    message = EmailMessage()
    message["Subject"] = i18n.gettext(SUBJECTS[notice.type])
    message["From"] = settings.mail_from
    message["To"] = ", ".join(notice.recipients)
    message["Date"] = format_datetime(dt.datetime.now(dt.UTC))
    # One Message-ID per notice, the same on every attempt: if a mail ever goes twice (a worker
    # killed between the server's "250 OK" and its own commit), mail programs show it once. The
    # creation time keeps it unique if the database is ever replaced and the ids start again.
    made = f"{notice.created_at:%Y%m%d%H%M%S}." if notice.created_at else ""
    message["Message-ID"] = f"<notice-{made}{notice.id}@{settings.mail_from.split('@')[-1]}>"
    message.set_content(_env().get_template("notice.txt").render(context))
    message.add_alternative(_env().get_template("notice.html").render(context), subtype="html")
    return message


async def send(message: EmailMessage, settings: Settings) -> None:
    """Deliver through SMTP_HOST:SMTP_PORT with the TLS mode and credentials from the settings."""
    await aiosmtplib.send(
        message,
        hostname=settings.smtp_host,
        port=settings.smtp_port,
        username=settings.smtp_user,
        password=settings.smtp_password,
        use_tls=settings.smtp_tls == "tls",
        start_tls=settings.smtp_tls == "starttls",
        timeout=30,
    )

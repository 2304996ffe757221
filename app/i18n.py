"""Japanese and English through Babel catalogues; the current language lives in a context variable."""

from __future__ import annotations

import contextvars
import datetime as dt
from functools import lru_cache
from pathlib import Path

from babel import Locale
from babel.dates import format_date as _babel_format_date
from babel.messages.pofile import read_po

LANGUAGES = ("ja", "en")
DEFAULT_LANGUAGE = "ja"
LOCALE_DIR = Path(__file__).parent / "locales"
_current: contextvars.ContextVar[str] = contextvars.ContextVar("lang", default=DEFAULT_LANGUAGE)


def N_(message: str) -> str:
    """Mark a string for extraction; it is translated where it is shown."""
    return message


@lru_cache(maxsize=4)
def _catalog(lang: str) -> dict[str, str | tuple[str, ...]]:
    path = LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po"
    if not path.exists():
        return {}
    with path.open("rb") as fh:
        catalog = read_po(fh, locale=lang)
    out: dict[str, str | tuple[str, ...]] = {}
    for message in catalog:
        strings = message.string if isinstance(message.string, tuple | list) else (message.string,)
        if not message.id or not all(strings) or message.fuzzy:
            continue
        key = str(message.id[0] if isinstance(message.id, tuple | list) else message.id)
        texts = tuple(str(text) for text in strings)
        out[key] = texts if isinstance(message.string, tuple | list) else texts[0]
    return out


def set_language(lang: str) -> None:
    _current.set(lang if lang in LANGUAGES else DEFAULT_LANGUAGE)


def get_language() -> str:
    return _current.get()


def gettext(message: str, **variables: object) -> str:
    found = _catalog(_current.get()).get(message)
    text = found if isinstance(found, str) else message
    return text % variables if variables else text


def translate(lang: str, message: str) -> str:
    """`message` in `lang`, whatever the current language (templates are compiled per language)."""
    found = _catalog(lang).get(message)
    return found if isinstance(found, str) else message


def plural_forms(lang: str, singular: str, plural: str) -> tuple[str, ...]:
    """The forms `ngettext` chooses from in `lang`: one (Japanese), or the forms for 1 and for
    other numbers (English, and any message without a translation)."""
    found = _catalog(lang).get(singular)
    if isinstance(found, tuple):
        return (found[0],) if len(found) == 1 else (found[0], found[1])
    return (singular, plural)


def plural(n: int, one: str, other: str) -> str:
    """The template filter `ngettext` folds into where a language has two forms (app/templating.py)."""
    return (one if n == 1 else other) % {"num": n}


def ngettext(singular: str, plural: str, n: int, **variables: object) -> str:
    forms = plural_forms(_current.get(), singular, plural)  # Japanese has one form; English two
    text = forms[0] if len(forms) == 1 or n == 1 else forms[1]
    variables.setdefault("num", n)
    return text % variables


def format_date(day: dt.date | None, form: str = "medium") -> str:
    """A date in the current language's usual form (2026/11/23 or Nov 23, 2026)."""
    if day is None:
        return ""
    return _formatted(_current.get(), day, form)


@lru_cache(maxsize=4096)
def _formatted(lang: str, day: dt.date, form: str) -> str:
    # Memoised: a page shows the same few dates again and again, and Babel's formatting (English)
    # costs ~15 µs a date.
    if lang == "ja" and form == "medium":
        weekday = "月火水木金土日"[day.weekday()]
        return f"{day.year}年{day.month}月{day.day}日({weekday})"
    if lang == "en" and form == "medium":
        return _babel_format_date(day, "EEE d MMM y", locale="en")
    return _babel_format_date(day, form, locale=lang)


@lru_cache(maxsize=512)
def negotiate(accept_language: str | None) -> str:
    """The first of our languages the browser prefers, else Japanese.

    Memoised: every request of a patron who never chose a language asks (~6 µs through Babel), and
    browsers send a few dozen distinct headers between them."""
    if not accept_language:
        return DEFAULT_LANGUAGE
    preferred = []
    for part in accept_language.split(","):
        piece = part.split(";")[0].strip().replace("-", "_")
        if piece and piece != "*":
            preferred.append(piece)
    found = Locale.negotiate(preferred, list(LANGUAGES), sep="_")
    return str(found) if found else DEFAULT_LANGUAGE

"""Every rule that differs between libraries, loaded from one TOML file (a preset or a path)."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path

PRESET_DIR = Path(__file__).parent / "policies"
PRESETS = ("default", "fukuoka", "koga", "kitakyushu", "yokohama", "fukushima")
PASSWORD_CLASSES = ("letter", "digit", "symbol")
NOTICE_CHOICES = ("pickup_ready", "due_reminder", "overdue", "card_expiry", "new_arrivals", "library_news")
CONTACTS = ("email", "phone", "none")
BARCODES = ("nw-7", "code39", "code128")


class PolicyError(ValueError):
    """The policy file is unreadable or holds a value out of range."""


@dataclass(frozen=True)
class Policy:
    name: str
    # Cards
    card_length: int = 9
    card_prefix: str = ""
    # Passwords
    password_min_length: int = 6
    password_max_length: int = 20
    password_symbols: str = ""  # symbols allowed besides letters and digits
    password_required_classes: tuple[str, ...] = ()
    password_registration_requires_kana: bool = False
    # Loans and renewals
    loan_days: int = 14
    renewal_days: int = 14
    renewal_counts_renewal_day: bool = False
    renewal_window_days: int = 0  # 0: any time before the due date
    renewals_allowed: int = 1
    # Holds
    hold_limit: int = 10
    shelf_days: int = 7
    overdue_blocks_holds: bool = False
    expired_card_blocks_holds: bool = True
    email_only_contact: bool = False
    email_required_for_holds: bool = False
    cancelled_visible_days: int = 14
    # Account
    max_emails: int = 3
    session_timeout_minutes: int = 60
    due_reminder_days: int = 2
    # Notices the patron may switch off or on (the others always follow the library's rule).
    optional_notices: tuple[str, ...] = (
        "pickup_ready",
        "due_reminder",
        "overdue",
        "card_expiry",
        "new_arrivals",
        "library_news",
    )
    document_retention_days: int = 0  # identity documents kept after review (0: deleted at once)
    card_barcode: str = "nw-7"  # symbology of the digital card: nw-7 (Codabar), code39 or code128

    @property
    def card_regex(self) -> re.Pattern[str]:
        rest = self.card_length - len(self.card_prefix)
        return re.compile(rf"{re.escape(self.card_prefix)}[0-9]{{{rest}}}")

    @property
    def contact_methods(self) -> tuple[str, ...]:
        return ("email",) if self.email_only_contact else CONTACTS


def _coerce(name: str, data: dict[str, object]) -> Policy:
    known = {f.name: f for f in fields(Policy)}
    unknown = set(data) - set(known)
    if unknown:
        raise PolicyError(f"Unknown policy setting(s): {', '.join(sorted(unknown))}")
    values: dict[str, object] = {}
    for key, value in data.items():
        default = known[key].default
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise PolicyError(f"{key} must be true or false")
        elif isinstance(default, int):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise PolicyError(f"{key} must be a whole number ≥ 0")
        elif isinstance(default, tuple):
            allowed = NOTICE_CHOICES if key == "optional_notices" else PASSWORD_CLASSES
            if not isinstance(value, list) or not all(v in allowed for v in value):
                raise PolicyError(f"{key} must be a list drawn from {allowed}")
            value = tuple(value)
        elif isinstance(default, str) and not isinstance(value, str):
            raise PolicyError(f"{key} must be a string")
        values[key] = value
    policy = Policy(name=name, **values)  # type: ignore[arg-type]
    if policy.password_min_length > policy.password_max_length:
        raise PolicyError("password_min_length exceeds password_max_length")
    if not policy.card_prefix.isdigit() and policy.card_prefix:
        raise PolicyError("card_prefix must be digits")
    if policy.card_barcode not in BARCODES:
        raise PolicyError(f"card_barcode must be one of {', '.join(BARCODES)}")
    if policy.card_length <= len(policy.card_prefix):
        raise PolicyError("card_length must be longer than card_prefix")
    return policy


def load_policy(spec: str) -> Policy:
    """Load a preset by name (`koga`) or a TOML file by path."""
    path = PRESET_DIR / f"{spec}.toml" if spec in PRESETS else Path(spec)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise PolicyError(f"LIBRARY_POLICY {spec!r}: no preset of that name and no such file") from exc
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"LIBRARY_POLICY {spec!r}: {exc}") from exc
    name = str(data.pop("name", path.stem))
    return _coerce(name, data)


@lru_cache(maxsize=8)
def get_policy(spec: str | None = None) -> Policy:
    """The policy named by LIBRARY_POLICY, loaded once per process."""
    if spec is None:
        from app.settings import get_settings

        spec = get_settings().library_policy
    return load_policy(spec)

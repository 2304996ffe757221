"""The only place that reads the system clock; tests and `jobs run --date` move it."""

from __future__ import annotations

import datetime as dt
import os
from zoneinfo import ZoneInfo

TZ = ZoneInfo("Asia/Tokyo")
_frozen_today: dt.date | None = None


def set_today(day: dt.date | None) -> None:
    """Pretend today is `day` (None: back to the real date)."""
    global _frozen_today
    _frozen_today = day


def now() -> dt.datetime:
    """The current time, aware, in the library's time zone."""
    current = dt.datetime.now(TZ)
    frozen = _frozen_today or _env_today()
    if frozen is not None:
        return current.replace(year=frozen.year, month=frozen.month, day=frozen.day)
    return current


def today() -> dt.date:
    """Today's date in the library's time zone."""
    return _frozen_today or _env_today() or dt.datetime.now(TZ).date()


def _env_today() -> dt.date | None:
    # APP_TODAY lets a server started by a test run on a chosen date.
    value = os.environ.get("APP_TODAY")
    return dt.date.fromisoformat(value) if value else None

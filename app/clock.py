"""The only place that reads the system clock; tests and `jobs run --date` move it."""

from __future__ import annotations

import datetime as dt
import os
import time
from zoneinfo import ZoneInfo

TZ = ZoneInfo("Asia/Tokyo")
_frozen_today: dt.date | None = None
# APP_TODAY lets a server started by a test run on a chosen date (read when the process starts).
_APP_TODAY = dt.date.fromisoformat(os.environ["APP_TODAY"]) if os.environ.get("APP_TODAY") else None


def set_today(day: dt.date | None) -> None:
    """Pretend today is `day` (None: back to the real date)."""
    global _frozen_today
    _frozen_today = day


def now() -> dt.datetime:
    """The current time, aware, in the library's time zone."""
    current = dt.datetime.now(TZ)
    frozen = _frozen_today or _APP_TODAY
    if frozen is not None:
        return current.replace(year=frozen.year, month=frozen.month, day=frozen.day)
    return current


_last_real_day: tuple[int, dt.date] = (-1, dt.date.min)  # (the second it was read in, that date)


def today() -> dt.date:
    """Today's date in the library's time zone (read from the clock at most once a second: a page
    asks several times, and a zone-aware now() costs microseconds each)."""
    frozen = _frozen_today or _APP_TODAY
    if frozen is not None:
        return frozen
    global _last_real_day
    second = int(time.time())
    if _last_real_day[0] != second:
        _last_real_day = (second, dt.datetime.now(TZ).date())
    return _last_real_day[1]

"""Notices (mails) decided by the services. The worker that sends them comes with the circulation work.

Services call these functions in the same transaction as the state change they report, so the
circulation/notice issue can fill them in (write the notice row) without touching the callers.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession


async def hold_accepted(session: AsyncSession, hold_ids: Sequence[int]) -> None:
    """A "hold accepted" mail for these holds (Koga: 予約受付メール). Not sent yet: no mail pipeline."""
    return None

"""The shape every "no, and here is why" of the personal-feature services shares."""

from __future__ import annotations

from typing import ClassVar


class Refused(ValueError):
    """A request a service turns down. `reason` keys the subclass's `messages`; `limit` fills %(max)s."""

    messages: ClassVar[dict[str, str]] = {}
    limits: ClassVar[dict[str, int]] = {}

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    @property
    def limit(self) -> int:
        return self.limits.get(self.reason, 0)

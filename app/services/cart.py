"""The reservation cart (予約カート): bib ids kept in the session, so guests can fill it too."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.i18n import N_
from app.models import Bib
from app.reads import Read

MAX_ENTRIES = 50

CART_MESSAGES = {
    "added": N_("Added to your cart."),
    "already": N_("This title is already in your cart."),
    "full": N_("Your cart is full (%(max)s titles). Reserve or remove some titles first."),
    "not_reservable": N_("This title cannot be reserved"),
    "removed": N_("Removed from your cart."),
}


class CartRefused(Exception):
    def __init__(self, reason: str, title: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.title = title


class BibNotFound(LookupError):
    """No such bib: the route answers 404."""


@dataclass(frozen=True)
class CartEntry:
    id: int
    title: str
    authors: str
    series_id: int | None
    series_volume: int | None


def ids_in(session_data: dict) -> list[int]:  # type: ignore[type-arg]
    return [int(i) for i in session_data.get("cart", []) if isinstance(i, int)][:MAX_ENTRIES]


_BIB = Read(lambda: select(Bib.id, Bib.loanable, Bib.title).where(Bib.id == bindparam("bib_id")))


async def add(db: AsyncSession, cart: list[int], bib_id: int) -> tuple[list[int], str]:
    """The cart with `bib_id` added, and the title's name (for the answer); raises CartRefused
    (with the name) or BibNotFound and leaves `cart` alone."""
    row = await _BIB.first(db, bib_id=bib_id)
    if row is None:
        raise BibNotFound(bib_id)
    if not row.loanable:
        raise CartRefused("not_reservable", row.title)
    if bib_id in cart:
        raise CartRefused("already", row.title)
    if len(cart) >= MAX_ENTRIES:
        raise CartRefused("full", row.title)
    return [*cart, bib_id], row.title


async def title_of(db: AsyncSession, bib_id: int) -> str:
    """A title's name, or "" when the catalogue no longer holds it."""
    row = await _BIB.first(db, bib_id=bib_id)
    return row.title if row is not None else ""


def remove(cart: list[int], bib_id: int) -> list[int]:
    if bib_id not in cart:
        raise BibNotFound(bib_id)
    return [i for i in cart if i != bib_id]


async def entries(db: AsyncSession, cart: list[int]) -> list[CartEntry]:
    """The cart's bibs in the order they were added (ids no longer in the catalogue drop out)."""
    if not cart:
        return []
    rows = await db.execute(
        select(Bib.id, Bib.title, Bib.authors, Bib.series_id, Bib.series_volume).where(Bib.id.in_(cart))
    )
    by_id = {r.id: CartEntry(*r) for r in rows}
    return [by_id[i] for i in cart if i in by_id]

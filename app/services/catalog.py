"""Catalogue look-ups. Search stays behind search() so its index can change without touching pages."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Bib

PAGE_SIZE = 20
MAX_QUERY = 200


@dataclass(frozen=True)
class SearchHit:
    id: int
    title: str
    authors: str
    publisher: str
    pub_year: int | None
    loanable: bool


@dataclass(frozen=True)
class SearchPage:
    query: str
    hits: list[SearchHit]
    total: int
    page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // PAGE_SIZE))


def normalize_query(text: str) -> str:
    """NFKC folds full-width letters and digits; the query is capped so it cannot be abused."""
    return " ".join(unicodedata.normalize("NFKC", text).split())[:MAX_QUERY]


async def search(session: AsyncSession, text: str, *, page: int = 1) -> SearchPage:
    """Substring search over title, reading and authors (the full-text index comes with issue 3)."""
    query = normalize_query(text)
    if not query:
        return SearchPage(query, [], 0, 1)
    conditions = []
    for word in query.split(" ")[:8]:
        pattern = "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        conditions.append(
            or_(
                Bib.title.ilike(pattern, escape="\\"),
                Bib.title_reading.ilike(pattern, escape="\\"),
                Bib.authors.ilike(pattern, escape="\\"),
            )
        )
    where = and_(*conditions)
    page = max(1, min(page, 500))
    total = await session.scalar(select(func.count()).select_from(Bib).where(where)) or 0
    rows = await session.execute(
        select(Bib.id, Bib.title, Bib.authors, Bib.publisher, Bib.pub_year, Bib.loanable)
        .where(where)
        .order_by(Bib.title_reading, Bib.id)
        .limit(PAGE_SIZE)
        .offset((page - 1) * PAGE_SIZE)
    )
    return SearchPage(query, [SearchHit(*row) for row in rows], total, page)

"""PostgreSQL search index: the catalogue's FTS5 tokens as a GIN-indexed tsvector

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-25 13:00:00

On SQLite the index is the FTS5 table bib_fts (0002); nothing changes there. On PostgreSQL,
bib_search holds one tsvector per bib, keyed like bib_fts's rowid (pub_year << 32 | bib id), so
"newest first" is the primary key's order (see app/services/search_text.py and catalog.py).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    op.execute("CREATE TABLE bib_search (key BIGINT PRIMARY KEY, doc TSVECTOR NOT NULL)")
    from app.services.catalog import reindex_all_sync

    reindex_all_sync(bind)  # fills bib_search, then builds its GIN index (catalog.PG_SEARCH_INDEX)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TABLE IF EXISTS bib_search")

"""Catalogue search index (SQLite FTS5) and the active-hold uniqueness rule.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    bind = op.get_bind()
    # One active hold per patron and bib, whichever channel placed it (spec 4: no duplicate hold).
    op.create_index(
        "uq_holds_active_patron_bib",
        "holds",
        ["patron_id", "bib_id"],
        unique=True,
        sqlite_where=sa.text("status IN ('waiting', 'in_transit', 'ready')"),
        postgresql_where=sa.text("status IN ('waiting', 'in_transit', 'ready')"),
    )
    op.create_index("ix_items_bib_status", "items", ["bib_id", "status"])
    with op.batch_alter_table("bibs") as batch:
        # The key under which the bib is in the search index (see app/services/catalog.py).
        batch.add_column(sa.Column("search_key", sa.BigInteger(), nullable=True))
    if bind.dialect.name == "sqlite":
        # rowid = pub_year << 32 | bib id, so "newest first" is the index's own order.
        op.execute(
            "CREATE VIRTUAL TABLE bib_fts USING fts5("
            "title, author, publisher, subject, chars, "
            "tokenize = 'unicode61 remove_diacritics 2', detail = 'full')"
        )
        from app.services.catalog import reindex_all_sync

        reindex_all_sync(bind)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS bib_fts")
    with op.batch_alter_table("bibs") as batch:
        batch.drop_column("search_key")
    op.drop_index("ix_items_bib_status", "items")
    op.drop_index("uq_holds_active_patron_bib", "holds")

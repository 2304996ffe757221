"""Indexes for reads that years of history would slow: current news, a patron's loans by date, holds

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03 11:00:00

Three reads of the dashboard and the holds page pick a few current rows out of tables that only
grow. With five years of a library's history (bench/pages.py, `_add_history`: 1 500 news items, a
heavy reader's 1 500 returned loans and 350 finished holds) they cost, on SQLite:

- the news shown now (urgent first, newest first): every item ever published, sorted: 450 µs.
  ix_news_current lets the read walk in its own order and stop after a few: 14 µs;
- the reading marathon's count of loans in its period: every loan the patron ever had: 360 µs.
  ix_loans_patron_loaned: 15 µs;
- a patron's listed holds (active ones, and those cancelled lately): every hold the patron ever
  placed. The statement now names the patron in each of its two arms, and ix_holds_patron_status
  also holds the cancellation time: 58 µs -> 15 µs.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_news_current", "news", ["urgent", "published_on", "id"])
    op.create_index("ix_loans_patron_loaned", "loans", ["patron_id", "loaned_on"])
    op.drop_index("ix_holds_patron_status", table_name="holds")
    op.create_index("ix_holds_patron_status", "holds", ["patron_id", "status", "cancelled_at"])


def downgrade() -> None:
    op.drop_index("ix_holds_patron_status", table_name="holds")
    op.create_index("ix_holds_patron_status", "holds", ["patron_id", "status"])
    op.drop_index("ix_loans_patron_loaned", table_name="loans")
    op.drop_index("ix_news_current", table_name="news")

"""Indexes for what the counter, the mailer and the daily jobs read among years of history

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03 18:00:00

`python -m bench history` counts the database work of every GET page and of the background jobs
with one and with ten years of a library's history. These grew with the history, not with what
they show (SQLite VM steps, 1 → 10 years):

- the counter's pickup shelf (holds ready at the branch): every hold ever placed (610 → 5 722);
  the daily jobs' ready holds too. ix_holds_status_pickup;
- the daily due reminders and overdue notices: every loan ever made (2 741 → 26 501).
  ix_loans_open_due holds only open loans, by due date;
- the mailer's look for library news to mail, every minute: every news item (911 → 9 011).
  ix_news_to_mail;
- the staff's list of failed mail: every failed notice, sorted (100 → 964). ix_notices_status
  (status, id) replaces ix_notices_status_next: the mailer's due notices are also wanted in id
  order, so both walk it in order and stop after a page;
- the applications waiting for review: every application ever made (158 → 1 508).
  ix_registrations_status; an applicant's earlier application (on every application):
  ix_registrations_email_birth.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OPEN = sa.text("returned_on IS NULL")


def upgrade() -> None:
    op.create_index("ix_holds_status_pickup", "holds", ["status", "pickup_branch_id", "shelf_until"])
    op.create_index("ix_loans_open_due", "loans", ["due_on"], sqlite_where=_OPEN, postgresql_where=_OPEN)
    op.create_index("ix_news_to_mail", "news", ["mail_requested", "mailed_at"])
    op.create_index("ix_notices_status", "notices", ["status", "id"])
    op.drop_index("ix_notices_status_next", table_name="notices")
    op.create_index("ix_registrations_status", "registrations", ["status", "id"])
    op.create_index("ix_registrations_email_birth", "registrations", ["email", "birth_date"])


def downgrade() -> None:
    op.drop_index("ix_registrations_email_birth", table_name="registrations")
    op.drop_index("ix_registrations_status", table_name="registrations")
    op.create_index("ix_notices_status_next", "notices", ["status", "next_attempt_at"])
    op.drop_index("ix_notices_status", table_name="notices")
    op.drop_index("ix_news_to_mail", table_name="news")
    op.drop_index("ix_loans_open_due", table_name="loans")
    op.drop_index("ix_holds_status_pickup", table_name="holds")

"""Notice settings per patron and the default contact method for the holds form.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "patrons", sa.Column("notify_pickup", sa.Boolean(), server_default=sa.true(), nullable=False)
    )
    op.add_column(
        "patrons", sa.Column("notify_arrivals", sa.Boolean(), server_default=sa.false(), nullable=False)
    )
    op.add_column(
        "patrons", sa.Column("notify_news", sa.Boolean(), server_default=sa.false(), nullable=False)
    )
    op.add_column("patrons", sa.Column("default_contact", sa.String(length=10), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("patrons") as batch:
        for column in ("default_contact", "notify_news", "notify_arrivals", "notify_pickup"):
            batch.drop_column(column)

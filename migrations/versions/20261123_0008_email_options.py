"""Koga's two options when an address is given at password registration, applied on confirmation.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "emails", sa.Column("default_on_confirm", sa.Boolean(), server_default=sa.false(), nullable=False)
    )
    op.add_column(
        "emails", sa.Column("holds_on_confirm", sa.Boolean(), server_default=sa.false(), nullable=False)
    )


def downgrade() -> None:
    with op.batch_alter_table("emails") as batch:
        batch.drop_column("holds_on_confirm")
        batch.drop_column("default_on_confirm")

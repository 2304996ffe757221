"""Email confirmation links: a hashed token and its expiry on each address.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("emails", sa.Column("token_hash", sa.String(length=64), nullable=True))
    op.add_column("emails", sa.Column("token_expires_at", sa.DateTime(), nullable=True))
    op.create_index("uq_emails_token_hash", "emails", ["token_hash"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_emails_token_hash", "emails")
    with op.batch_alter_table("emails") as batch:
        batch.drop_column("token_expires_at")
        batch.drop_column("token_hash")

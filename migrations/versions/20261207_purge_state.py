"""Retention remembers how far it got, and which process runs it.

Each purge read every delivery it had already emptied again, from the oldest on, and so grew
slower for ever; it now starts where the last one stopped. A lease in the same row lets one
process at a time purge, across replicas.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 03:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "purge_state",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("purged_to", sa.DateTime(timezone=False), nullable=True),
        sa.Column("purged_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("leased_by", sa.String(32), nullable=True),
        sa.Column("leased_until", sa.DateTime(timezone=False), nullable=True),
        sa.PrimaryKeyConstraint("name", name="pk_purge_state"),
    )


def downgrade() -> None:
    op.drop_table("purge_state")

"""Tencent CI queues listed for jobs whose callback never came (STEMHOOK_CI_QUEUES).

One row per configured queue, written by the lister that first lists it: how far its listing
got and its lease, so that one process at a time lists a queue, from where the last stopped.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-12 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "ci_listing",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("listed_to", sa.DateTime(timezone=False), nullable=True),
        sa.Column("window_end", sa.DateTime(timezone=False), nullable=True),
        sa.Column("next_token", sa.Text(), nullable=True),
        sa.Column("pages", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_listed_at", sa.DateTime(timezone=False), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("run_after", sa.DateTime(timezone=False), nullable=True),
        sa.Column("leased_by", sa.String(32), nullable=True),
        sa.Column("leased_until", sa.DateTime(timezone=False), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_ci_listing"),
        sa.UniqueConstraint("name", name="uq_ci_listing_name"),
    )


def downgrade() -> None:
    op.drop_table("ci_listing")

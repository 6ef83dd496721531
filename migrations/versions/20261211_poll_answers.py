"""Poll answers by provider and outcome, for /metrics.

Each scrape counts the deliveries that hold a provider's answer to a poll (endpoint `poll/...`)
by provider and outcome: without an index that reads every delivery, every scrape. Only poll
answers are in it, a small part of the inbox.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-11 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_delivery_provider_outcome",
        "delivery",
        ["provider", "outcome"],
        sqlite_where=sa.text("endpoint LIKE 'poll/%'"),
        postgresql_where=sa.text("endpoint LIKE 'poll/%'"),
    )


def downgrade() -> None:
    op.drop_index("ix_delivery_provider_outcome", table_name="delivery")

"""The body each signed (provider, task id, timestamp) was first stored with.

Suno signs `task_id.timestamp`, not the body: without this, a signature seen once (in a failed
delivery, say) would vouch for any other body under the same task within its freshness window.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 03:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "signature_use",
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("task_id", sa.String(255), nullable=False),
        sa.Column("signed_timestamp", sa.Text(), nullable=False),
        sa.Column("body_sha256", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint(
            "provider", "task_id", "signed_timestamp", name=op.f("pk_signature_use")
        ),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("signature_use")

"""Query indexes for the job and delivery listings; deliveries remember what they replay.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 18:26:43
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JOB_INDEXES = {
    "ix_job_last_received_at_id": ["last_received_at", "id"],
    "ix_job_state_last_received_at_id": ["state", "last_received_at", "id"],
    "ix_job_provider_kind_last_received_at_id": ["provider", "kind", "last_received_at", "id"],
    "ix_job_custom_id": ["custom_id"],
    "ix_job_created_at": ["created_at"],
    "ix_job_last_delivery_id": ["last_delivery_id"],
}
DELIVERY_INDEXES = {
    "ix_delivery_outcome_id": ["outcome", "id"],
    "ix_delivery_provider_id": ["provider", "id"],
    "ix_delivery_replay_of": ["replay_of"],
}


def upgrade() -> None:
    # SQLite adds a nullable column with a REFERENCES clause in place; Alembic would rewrite
    # the whole delivery table for it (batch mode), however large the inbox has grown.
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE delivery ADD COLUMN replay_of INTEGER REFERENCES delivery (id)")
    else:
        op.add_column("delivery", sa.Column("replay_of", ID, nullable=True))
        op.create_foreign_key(
            "fk_delivery_replay_of_delivery", "delivery", "delivery", ["replay_of"], ["id"]
        )
    for name, columns in DELIVERY_INDEXES.items():
        op.create_index(name, "delivery", columns)
    for name, columns in JOB_INDEXES.items():
        op.create_index(name, "job", columns)
    op.create_index("ix_job_user_data", "job", ["user_data"], postgresql_using="hash")


def downgrade() -> None:
    op.drop_index("ix_job_user_data", "job")
    for name in JOB_INDEXES:
        op.drop_index(name, "job")
    for name in DELIVERY_INDEXES:
        op.drop_index(name, "delivery")
    if op.get_bind().dialect.name == "sqlite":
        # The inline REFERENCES has no name; rebuilding the table without the column drops it.
        with op.batch_alter_table("delivery") as batch:
            batch.drop_column("replay_of")
    else:
        op.drop_constraint("fk_delivery_replay_of_delivery", "delivery", type_="foreignkey")
        op.drop_column("delivery", "replay_of")

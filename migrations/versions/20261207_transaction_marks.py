"""Each delivery and job row carries the number of the transaction that wrote it last.

Listings and long polls knew which deliveries were final by the highest delivery id, which held
only while every write transaction took one global lock in turn. Writers now commit in parallel,
and a reader knows what is final by transaction number instead: on PostgreSQL the writer's
transaction id (below a snapshot's xmin, a transaction has ended), on SQLite the batch's first
delivery id (its writers still take turns). Rows written before this revision count as final
(0). The job's index on its last delivery served only those two readers and is replaced by one
on its last transaction (docs/decisions/0012-parallel-writers-and-transaction-marks.md).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 07:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # A constant default: PostgreSQL adds the column without rewriting the table.
    op.add_column("delivery", sa.Column("tx", ID, server_default=sa.text("0"), nullable=False))
    op.add_column("job", sa.Column("last_tx", ID, server_default=sa.text("0"), nullable=False))
    op.create_index("ix_job_last_tx", "job", ["last_tx"])
    op.drop_index("ix_job_last_delivery_id", table_name="job")


def downgrade() -> None:
    op.create_index("ix_job_last_delivery_id", "job", ["last_delivery_id"])
    op.drop_index("ix_job_last_tx", table_name="job")
    # Not through a table copy on SQLite: other tables' foreign keys point at both.
    op.drop_column("job", "last_tx")
    op.drop_column("delivery", "tx")

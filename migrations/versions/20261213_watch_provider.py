"""The provider on each watch, and the claim index by provider.

A poller claims one provider's due watches at a time. Found through the job, that claim walked
every due watch of every provider and probed its job (PostgreSQL: ~490 ms of server CPU a poll
with 10,000 watches due); with the job's provider on the watch (it never changes) and an index
on (provider, run_after), it reads the first rows of one provider's range, in order.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-13 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DUE = sa.text("run_after IS NOT NULL")


def upgrade() -> None:
    # Dropped before SQLite's batch copies the table, which would not keep its WHERE.
    op.drop_index("ix_job_watch_run_after", table_name="job_watch")
    op.add_column("job_watch", sa.Column("provider", sa.String(32), nullable=True))
    op.execute(
        "UPDATE job_watch SET provider = (SELECT job.provider FROM job WHERE job.id = job_pk)"
    )
    with op.batch_alter_table("job_watch") as batch:
        batch.alter_column("provider", existing_type=sa.String(32), nullable=False)
    op.create_index(
        "ix_job_watch_provider_run_after",
        "job_watch",
        ["provider", "run_after"],
        sqlite_where=DUE,
        postgresql_where=DUE,
    )


def downgrade() -> None:
    op.drop_index("ix_job_watch_provider_run_after", table_name="job_watch")
    with op.batch_alter_table("job_watch") as batch:
        batch.drop_column("provider")
    op.create_index(
        "ix_job_watch_run_after",
        "job_watch",
        ["run_after"],
        sqlite_where=DUE,
        postgresql_where=DUE,
    )

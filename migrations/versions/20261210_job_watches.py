"""Jobs stemhook watches until they finish, polling their provider when no callback comes.

A callback that never arrives was a job stemhook never heard of. Every job first heard of
unfinished now gets a watch row, written in the transaction that creates it, which the pollers
(app/polling/) claim when no final state has come in time; the delivery that finishes the job
ends its watch. A job registered by `PUT /v1/jobs/{provider}/{job_id}/expect` exists before any
delivery, so the job's delivery bookkeeping may be null, and the transaction that registered it
is kept (`registered_tx`: a listing begun after it places the job by its registration).
Unfinished jobs already stored are watched from here on, with the defaults (first poll 10
minutes after they were last heard of, given up 48 hours after they were first).

On SQLite making a column nullable copies the table, which other tables' foreign keys point
at: migrations/env.py runs every SQLite migration with foreign keys off (a dropped `job` would
otherwise take every row that cascades from it) and checks them before it commits.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-10 09:00:00
"""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
FINAL = ("succeeded", "failed", "canceled")
POLL_AFTER = timedelta(minutes=10)
GIVE_UP_AFTER = timedelta(hours=48)


def upgrade() -> None:
    with op.batch_alter_table("job") as batch:
        batch.alter_column("last_delivery_id", existing_type=ID, nullable=True)
        batch.alter_column("state_delivery_id", existing_type=ID, nullable=True)
        batch.add_column(sa.Column("registered_tx", ID, nullable=True))
    op.create_table(
        "job_watch",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("job_pk", ID, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("polls", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_polled_at", sa.DateTime(timezone=False), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("give_up_at", sa.DateTime(timezone=False), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("run_after", sa.DateTime(timezone=False), nullable=True),
        sa.Column("leased_by", sa.String(32), nullable=True),
        sa.Column("leased_until", sa.DateTime(timezone=False), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_pk"], ["job.id"], name="fk_job_watch_job_pk_job", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_job_watch"),
        sa.UniqueConstraint("job_pk", name="uq_job_watch_job_pk"),
    )
    op.create_index("ix_job_watch_status_job_pk", "job_watch", ["status", "job_pk"])
    op.create_index(
        "ix_job_watch_run_after",
        "job_watch",
        ["run_after"],
        sqlite_where=sa.text("run_after IS NOT NULL"),
        postgresql_where=sa.text("run_after IS NOT NULL"),
    )
    _watch_unfinished_jobs()


def _watch_unfinished_jobs() -> None:
    """A watch for every unfinished job, in batches of rows read and written through Python: the
    date arithmetic is the same on both databases then, and the jobs are few (most arrive
    final)."""
    connection = op.get_bind()
    job = sa.table(
        "job",
        sa.column("id", ID),
        sa.column("state", sa.String),
        sa.column("first_received_at", sa.DateTime),
        sa.column("last_received_at", sa.DateTime),
    )
    watch = sa.table(
        "job_watch",
        sa.column("job_pk", ID),
        sa.column("status", sa.String),
        sa.column("give_up_at", sa.DateTime),
        sa.column("run_after", sa.DateTime),
    )
    unfinished = (
        sa.select(job.c.id, job.c.first_received_at, job.c.last_received_at)
        .where(job.c.state.not_in(FINAL))
        .order_by(job.c.id)
    )
    after = 0
    while True:
        rows = connection.execute(unfinished.where(job.c.id > after).limit(1000)).all()
        if not rows:
            return
        connection.execute(watch.insert(), [_watch(row) for row in rows])
        after = rows[-1].id


def _watch(row: sa.Row[Any]) -> dict[str, Any]:
    """Waiting, or given up already where its give-up time has passed (rather than polled once
    at the upgrade, however old)."""
    give_up_at = _naive(row.first_received_at) + GIVE_UP_AFTER
    if give_up_at <= datetime.now(UTC).replace(tzinfo=None):
        return {"job_pk": row.id, "status": "gave_up", "give_up_at": give_up_at, "run_after": None}
    run_after = _naive(row.last_received_at) + POLL_AFTER
    return {"job_pk": row.id, "status": "waiting", "give_up_at": give_up_at, "run_after": run_after}


def _naive(value: datetime) -> datetime:
    """Naive UTC, as the columns hold it (SQLite may hand back an aware value)."""
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def downgrade() -> None:
    op.drop_table("job_watch")
    # Jobs only registered, never delivered, cannot be kept without their deliveries (a job's
    # first delivery always sets its state delivery too: statements.py, the merge rule).
    op.execute(sa.text("DELETE FROM job WHERE last_delivery_id IS NULL"))
    with op.batch_alter_table("job") as batch:
        batch.drop_column("registered_tx")
        batch.alter_column("last_delivery_id", existing_type=ID, nullable=False)
        batch.alter_column("state_delivery_id", existing_type=ID, nullable=False)

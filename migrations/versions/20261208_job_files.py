"""Output files that stemhook keeps a copy of, each its own task in the work queue.

Provider links expire (Suno-style providers keep separated stems about 14 days), so every output
of a succeeded job that names a source gets a row here, written in the transaction of the job
change that makes it fetchable; background workers claim rows with a lease, fetch and store the
file, and record what became of it (docs/decisions/0015-a-work-queue-of-our-own.md).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "job_file",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("job_pk", ID, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("bucket", sa.Text(), nullable=True),
        sa.Column("region", sa.Text(), nullable=True),
        sa.Column("object", sa.Text(), nullable=True),
        sa.Column("expected_md5", sa.Text(), nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("md5", sa.String(32), nullable=True),
        sa.Column("md5_verified", sa.Boolean(), nullable=True),
        sa.Column("content_type", sa.Text(), nullable=True),
        sa.Column("stored_at", sa.DateTime(timezone=False), nullable=True),
        sa.Column("storage_key", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("run_after", sa.DateTime(timezone=False), nullable=True),
        sa.Column("leased_by", sa.String(32), nullable=True),
        sa.Column("leased_until", sa.DateTime(timezone=False), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_pk"], ["job.id"], name="fk_job_file_job_pk_job", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_job_file"),
        sa.UniqueConstraint("job_pk", "position", name="uq_job_file_job_pk_position"),
    )
    op.create_index("ix_job_file_status_job_pk", "job_file", ["status", "job_pk"])
    op.create_index(
        "ix_job_file_run_after",
        "job_file",
        ["run_after"],
        sqlite_where=sa.text("run_after IS NOT NULL"),
        postgresql_where=sa.text("run_after IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_table("job_file")

"""Stored files by age, for retention (`stemhook purge --files-older-than`).

Retention removes the stored copies older than a cutoff, oldest first, in small batches: without
an index each batch would sort every stored file. Only stored copies are in it, so rows leave it
as their copies are removed and a run reads nothing that earlier runs removed.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-09 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_job_file_status_stored_at",
        "job_file",
        # Status leads so that SQLite's planner, without statistics, prefers it to
        # ix_job_file_status_job_pk for `status = 'stored' AND stored_at < ?`.
        ["status", "stored_at"],
        sqlite_where=sa.text("status = 'stored'"),
        postgresql_where=sa.text("status = 'stored'"),
    )


def downgrade() -> None:
    op.drop_index("ix_job_file_status_stored_at", table_name="job_file")

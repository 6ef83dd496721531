"""Fewer index pages written per callback: sparse columns in partial indexes, no unused index.

Every B-tree a delivery adds an entry to is a page its commit writes (to the WAL on SQLite):
under light load, when a commit holds one delivery, ~23 pages for a Media Lab callback. Three
indexes only ever serve equality look-ups of a column that is null in most rows (replays,
custom ids, user data): they index only the rows that have a value. job_event's index on
delivery_id served no query (a delivery's jobs are found through delivery_job) and goes. On
SQLite, delivery_job becomes a WITHOUT ROWID table: keyed by its primary key, it is one B-tree
instead of a table and the primary key's index.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 08:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SPARSE = {
    # index name: (table, column, PostgreSQL index method)
    "ix_delivery_replay_of": ("delivery", "replay_of", "btree"),
    "ix_job_custom_id": ("job", "custom_id", "btree"),
    "ix_job_user_data": ("job", "user_data", "hash"),
}


def upgrade() -> None:
    for name, (table, column, method) in SPARSE.items():
        op.drop_index(name, table_name=table)
        _create(name, table, column, method, where=sa.text(f"{column} IS NOT NULL"))
    op.drop_index("ix_job_event_delivery_id", table_name="job_event")
    _delivery_job_with_rowid(False)


def downgrade() -> None:
    _delivery_job_with_rowid(True)
    op.create_index("ix_job_event_delivery_id", "job_event", ["delivery_id"])
    for name, (table, column, method) in SPARSE.items():
        op.drop_index(name, table_name=table)
        _create(name, table, column, method, where=None)


def _create(
    name: str, table: str, column: str, method: str, *, where: sa.TextClause | None
) -> None:
    op.create_index(
        name,
        table,
        [column],
        postgresql_using=method,
        postgresql_where=where,
        sqlite_where=where,
    )


def _delivery_job_with_rowid(with_rowid: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table(
        "delivery_job", recreate="always", table_kwargs={"sqlite_with_rowid": with_rowid}
    ):
        pass

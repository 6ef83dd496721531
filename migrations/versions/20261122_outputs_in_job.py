"""A job's outputs live in the job, as one JSON array, instead of one job_output row each.

They are always written and read whole with their job; five stems cost five rows and ten index
entries per callback as rows. Existing outputs move into their jobs in position order, and back
on downgrade.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 10:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
FIELDS = (
    "role",
    "url",
    "bucket",
    "region",
    "object",
    "content_id",
    "destination",
    "file_name",
    "md5",
)


def upgrade() -> None:
    op.add_column("job", sa.Column("outputs", JSON, nullable=True))
    pairs = ", ".join(f"'{name}', o.{name}" for name in FIELDS)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "UPDATE job SET outputs = o.outputs FROM ("
            f" SELECT job_pk, jsonb_agg(jsonb_build_object({pairs}) ORDER BY position) AS outputs"
            " FROM job_output o GROUP BY job_pk) o WHERE o.job_pk = job.id"
        )
    else:
        # SQLite before 3.44 has no ORDER BY inside an aggregate, and the order an aggregate
        # sees an ordered subquery's rows in is not documented; a window's frame order is.
        op.execute(
            "UPDATE job SET outputs = m.outputs FROM (SELECT job_pk, outputs FROM ("
            f" SELECT job_pk, row_number() OVER w AS n, json_group_array(json_object({pairs}))"
            " OVER w AS outputs FROM job_output o WINDOW w AS (PARTITION BY job_pk"
            " ORDER BY position ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING))"
            " WHERE n = 1) m WHERE m.job_pk = job.id"
        )
    op.drop_table("job_output")


def downgrade() -> None:
    op.create_table(
        "job_output",
        sa.Column("id", ID, nullable=False),
        sa.Column("job_pk", ID, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        *(sa.Column(name, sa.Text(), nullable=True) for name in FIELDS[1:]),
        sa.ForeignKeyConstraint(
            ["job_pk"], ["job.id"], name=op.f("fk_job_output_job_pk_job"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_output")),
        sa.UniqueConstraint("job_pk", "position", name=op.f("uq_job_output_job_pk_position")),
    )
    columns = ", ".join(FIELDS)
    if op.get_bind().dialect.name == "postgresql":
        values = ", ".join(f"e.value ->> '{name}'" for name in FIELDS)
        op.execute(
            f"INSERT INTO job_output (job_pk, position, {columns})"
            f" SELECT job.id, e.position - 1, {values} FROM job"
            " CROSS JOIN jsonb_array_elements(job.outputs) WITH ORDINALITY e(value, position)"
            " WHERE job.outputs IS NOT NULL ORDER BY job.id, e.position"
        )
    else:
        values = ", ".join(f"json_extract(e.value, '$.{name}')" for name in FIELDS)
        op.execute(
            f"INSERT INTO job_output (job_pk, position, {columns})"
            f" SELECT job.id, e.key, {values} FROM job, json_each(job.outputs) e"
            " WHERE job.outputs IS NOT NULL ORDER BY job.id, e.key"
        )
    op.drop_column("job", "outputs")

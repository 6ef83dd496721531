"""Initial schema: deliveries, jobs, outputs, events and their links.

Revision ID: 0001
Revises:
Create Date: 2026-11-21 17:58:15.067137
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "delivery",
        sa.Column("id", ID, nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("endpoint", sa.String(length=32), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("content_type", sa.Text(), nullable=True),
        sa.Column("client_addr", sa.Text(), nullable=True),
        sa.Column("headers", JSON, nullable=False),
        sa.Column("body_size", sa.Integer(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery")),
    )
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_delivery_received_at"), ["received_at"], unique=False)

    op.create_table(
        "job",
        sa.Column("id", ID, nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("job_id", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("provider_state", sa.Text(), nullable=False),
        sa.Column("error_code", sa.Text(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("custom_id", sa.String(length=255), nullable=True),
        sa.Column("user_data", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("input_bucket", sa.Text(), nullable=True),
        sa.Column("input_region", sa.Text(), nullable=True),
        sa.Column("input_object", sa.Text(), nullable=True),
        sa.Column("input_url", sa.Text(), nullable=True),
        sa.Column("media_info", JSON, nullable=True),
        sa.Column("tts_input", sa.Text(), nullable=True),
        sa.Column("tts_input_type", sa.Text(), nullable=True),
        sa.Column("workflow_id", sa.Text(), nullable=True),
        sa.Column("workflow_name", sa.Text(), nullable=True),
        sa.Column("workflow_run_id", sa.Text(), nullable=True),
        sa.Column("workflow_node", sa.Text(), nullable=True),
        sa.Column("tasks", JSON, nullable=True),
        sa.Column("template_id", sa.Text(), nullable=True),
        sa.Column("template_name", sa.Text(), nullable=True),
        sa.Column("queue_id", sa.Text(), nullable=True),
        sa.Column("deliveries", sa.Integer(), nullable=False),
        sa.Column("first_received_at", sa.DateTime(), nullable=False),
        sa.Column("last_received_at", sa.DateTime(), nullable=False),
        sa.Column("last_delivery_id", ID, nullable=False),
        sa.Column("state_delivery_id", ID, nullable=False),
        sa.Column("outputs_delivery_id", ID, nullable=True),
        sa.Column("previous_state", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["last_delivery_id"], ["delivery.id"], name=op.f("fk_job_last_delivery_id_delivery")
        ),
        sa.ForeignKeyConstraint(
            ["outputs_delivery_id"],
            ["delivery.id"],
            name=op.f("fk_job_outputs_delivery_id_delivery"),
        ),
        sa.ForeignKeyConstraint(
            ["state_delivery_id"], ["delivery.id"], name=op.f("fk_job_state_delivery_id_delivery")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job")),
        sa.UniqueConstraint("provider", "job_id", name=op.f("uq_job_provider_job_id")),
    )
    op.create_table(
        "delivery_job",
        sa.Column("delivery_id", ID, nullable=False),
        sa.Column("job_pk", ID, nullable=False),
        sa.Column("duplicate", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_id"], ["delivery.id"], name=op.f("fk_delivery_job_delivery_id_delivery")
        ),
        sa.ForeignKeyConstraint(
            ["job_pk"], ["job.id"], name=op.f("fk_delivery_job_job_pk_job"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("delivery_id", "job_pk", name=op.f("pk_delivery_job")),
    )
    with op.batch_alter_table("delivery_job", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_delivery_job_job_pk"), ["job_pk"], unique=False)

    op.create_table(
        "job_event",
        sa.Column("id", ID, nullable=False),
        sa.Column("job_pk", ID, nullable=False),
        sa.Column("delivery_id", ID, nullable=False),
        sa.Column("from_state", sa.String(length=32), nullable=True),
        sa.Column("to_state", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_id"], ["delivery.id"], name=op.f("fk_job_event_delivery_id_delivery")
        ),
        sa.ForeignKeyConstraint(
            ["job_pk"], ["job.id"], name=op.f("fk_job_event_job_pk_job"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_event")),
    )
    with op.batch_alter_table("job_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_job_event_delivery_id"), ["delivery_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_job_event_job_pk"), ["job_pk"], unique=False)

    op.create_table(
        "job_output",
        sa.Column("id", ID, nullable=False),
        sa.Column("job_pk", ID, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("bucket", sa.Text(), nullable=True),
        sa.Column("region", sa.Text(), nullable=True),
        sa.Column("object", sa.Text(), nullable=True),
        sa.Column("content_id", sa.Text(), nullable=True),
        sa.Column("destination", sa.Text(), nullable=True),
        sa.Column("file_name", sa.Text(), nullable=True),
        sa.Column("md5", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_pk"], ["job.id"], name=op.f("fk_job_output_job_pk_job"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_output")),
        sa.UniqueConstraint("job_pk", "position", name=op.f("uq_job_output_job_pk_position")),
    )


def downgrade() -> None:
    op.drop_table("job_output")
    with op.batch_alter_table("job_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_job_event_job_pk"))
        batch_op.drop_index(batch_op.f("ix_job_event_delivery_id"))

    op.drop_table("job_event")
    with op.batch_alter_table("delivery_job", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_delivery_job_job_pk"))

    op.drop_table("delivery_job")
    op.drop_table("job")
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_delivery_received_at"))

    op.drop_table("delivery")

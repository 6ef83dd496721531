"""The state an unconfirmed callback claims for each of its jobs (STEMHOOK_CONFIRM_BY_POLL).

An unsigned callback of a provider named by the setting that says a job is final is stored
without merging that job: its link to the job keeps the state it claims, until the provider's own
answer decides it (docs/decisions/0019). Nullable and empty in every link stored before, so the
column is added in place on both databases, however large the table has grown.

Down again, deliveries still waiting for their provider's word become rejected, with the reason:
the version before knows no `unconfirmed` outcome, and a replay there merges them as they are.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-14 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEVER_CONFIRMED = (
    "unconfirmed when stemhook was downgraded: its provider had not said the state it claims"
    " (replaying it merges it as it is)"
)


def upgrade() -> None:
    op.add_column("delivery_job", sa.Column("claimed_state", sa.String(32), nullable=True))


def downgrade() -> None:
    op.execute(
        sa.text(
            "UPDATE delivery SET outcome = 'rejected', error = :error WHERE outcome = 'unconfirmed'"
        ).bindparams(error=NEVER_CONFIRMED)
    )
    op.drop_column("delivery_job", "claimed_state")

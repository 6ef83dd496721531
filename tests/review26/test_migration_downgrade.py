"""Review of issue 26: migration 0010's downgrade with a registered job that has been answered
without a change of state (a PENDING poll answer, a `submitted` callback)."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from sqlalchemy import text

from app.ingest.admission import admit
from app.providers.model import Provider
from tests.conftest import Backend
from tests.ingest.batches import stored
from tests.ingest.submissions import polled
from tests.polling.conftest import answer_of, expect
from tests.test_migrations import _at_revision


def test_downgrade_keeps_or_drops_a_registered_job_answered_pending(
    backend: Backend, fresh_database_url: str
) -> None:
    config, engine = _at_revision(backend, fresh_database_url, "head")
    try:
        expect(engine, Provider.SUNO, "t-1", at=datetime.now(UTC))
        pending = answer_of(Provider.SUNO, "record_info_pending.json", "t-1")
        intake = admit(polled(pending, Provider.SUNO), suno_key=None, max_jobs=10)
        with engine.begin() as connection:
            [receipt] = stored(connection, [intake])
        assert receipt.outcome.value == "duplicate"
        with engine.connect() as connection:
            row = connection.execute(
                text("SELECT last_delivery_id, state_delivery_id FROM job")
            ).one()
        assert row[0] is not None and row[1] is None  # what 0010's downgrade must handle

        command.downgrade(config, "0009")  # fails: state_delivery_id NOT NULL

        with engine.connect() as connection:
            jobs = connection.execute(text("SELECT count(*) FROM job")).scalar()
        assert jobs in (0, 1)
    finally:
        engine.dispose()

"""Migration 0010's downgrade keeps a registered job a delivery has spoken of and drops one only
registered (it has no delivery to point at)."""

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


def test_downgrade_keeps_a_registered_job_answered_pending_and_drops_one_never_heard_of(
    backend: Backend, fresh_database_url: str
) -> None:
    config, engine = _at_revision(backend, fresh_database_url, "head")
    try:
        expect(engine, Provider.SUNO, "t-1", at=datetime.now(UTC))
        pending = answer_of(Provider.SUNO, "record_info_pending.json", "t-1")
        intake = admit(polled(pending, Provider.SUNO), suno_key=None, max_jobs=10)
        with engine.begin() as connection:
            [receipt] = stored(connection, [intake])
        assert receipt.outcome.value == "accepted"  # the first word on a registered job
        expect(engine, Provider.SUNO, "never-heard-of", at=datetime.now(UTC))

        command.downgrade(config, "0009")

        with engine.connect() as connection:
            jobs = connection.execute(text("SELECT job_id FROM job")).scalars().all()
        assert jobs == ["t-1"]  # the job only registered goes: it has no delivery
    finally:
        engine.dispose()

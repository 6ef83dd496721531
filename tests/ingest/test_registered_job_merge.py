"""The first delivery of a registered job, even in the state it was registered in (`submitted`:
Suno's PENDING, Media Lab's state 1, CI's Submitted), wins over the registration's placeholders
(kind 'unknown', provider_state ''): it is the provider's first word on the job."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, select

from app import models
from app.ingest.admission import admit
from app.providers.model import Provider
from tests.ingest.batches import stored
from tests.ingest.submissions import polled
from tests.polling.conftest import answer_of, expect


def _job(engine: Engine, job_id: str) -> tuple[str, str, str]:
    job = models.Job
    with engine.connect() as connection:
        row = connection.execute(
            select(job.state, job.kind, job.provider_state).where(job.job_id == job_id)
        ).one()
    return (row.state, row.kind, row.provider_state)


def test_a_registered_jobs_first_answer_names_its_kind_and_provider_state(engine: Engine) -> None:
    expect(engine, Provider.SUNO, "registered", at=datetime.now(UTC))
    intakes = [
        admit(
            polled(answer_of(Provider.SUNO, "record_info_pending.json", job_id), Provider.SUNO),
            suno_key=None,
            max_jobs=10,
        )
        for job_id in ("registered", "unregistered")
    ]
    with engine.begin() as connection:
        receipts = stored(connection, intakes)

    # The same answer about a job nobody registered gives it its kind and provider state.
    heard_of = _job(engine, "unregistered")
    assert heard_of[1] != "unknown"
    assert _job(engine, "registered") == heard_of
    # It is the job's first delivery: not a duplicate of anything.
    assert [receipt.outcome.value for receipt in receipts] == ["accepted", "accepted"]

"""One batch that creates some jobs and merges into others, a job more than once."""

from __future__ import annotations

from sqlalchemy import Engine, text

from app.ingest.admission import admit
from app.ingest.driver import Cursor
from app.ingest.intake import Outcome, Receipt
from app.ingest.statements import build_statements
from app.ingest.store import store_batch
from tests.api.payloads import ci_json
from tests.ingest.submissions import detected


def store(engine: Engine, *deliveries: tuple[str, str]) -> list[Receipt]:
    """One batch in one transaction, as the writer stores it (not the committer, which would
    retry each delivery alone if the batch failed, and so hide the failure)."""
    intakes = [
        admit(
            detected(ci_json(job_id, state)),
            suno_key=None,
            max_jobs=1,
        )
        for job_id, state in deliveries
    ]
    with engine.begin() as connection:
        cursor = Cursor(connection)
        try:
            return store_batch(cursor, build_statements(engine.dialect), intakes)
        finally:
            cursor.close()


def outcome(receipt: Receipt) -> tuple[str, str, bool, Outcome]:
    (job,) = receipt.jobs
    return job.job_id, job.state.value, job.duplicate, receipt.outcome


def test_a_batch_creates_new_jobs_and_merges_into_known_ones_in_arrival_order(
    engine: Engine,
) -> None:
    (first,) = store(engine, ("j-known", "Running"))
    assert outcome(first) == ("j-known", "running", False, Outcome.ACCEPTED)

    receipts = store(
        engine,
        ("j-new", "Running"),
        ("j-known", "Success"),
        ("j-new", "Success"),
        ("j-known", "Success"),
        ("j-other", "Failed"),
        ("j-new", "Running"),
    )

    assert [outcome(receipt) for receipt in receipts] == [
        ("j-new", "running", False, Outcome.ACCEPTED),
        ("j-known", "succeeded", False, Outcome.ACCEPTED),
        ("j-new", "succeeded", False, Outcome.ACCEPTED),
        ("j-known", "succeeded", True, Outcome.DUPLICATE),
        ("j-other", "failed", False, Outcome.ACCEPTED),
        ("j-new", "succeeded", True, Outcome.DUPLICATE),
    ]
    with engine.connect() as connection:
        jobs = connection.execute(
            text("SELECT job_id, state, deliveries FROM job ORDER BY job_id")
        ).all()
        events = connection.execute(
            text(
                "SELECT job.job_id, job_event.from_state, job_event.to_state"
                " FROM job_event JOIN job ON job.id = job_event.job_pk"
                " ORDER BY job.job_id, job_event.id"
            )
        ).all()
        duplicates = connection.execute(
            text("SELECT count(*) FROM delivery WHERE outcome = 'duplicate'")
        ).scalar_one()
    assert [tuple(row) for row in jobs] == [
        ("j-known", "succeeded", 3),
        ("j-new", "succeeded", 3),
        ("j-other", "failed", 1),
    ]
    assert [tuple(row) for row in events] == [
        ("j-known", None, "running"),
        ("j-known", "running", "succeeded"),
        ("j-new", None, "running"),
        ("j-new", "running", "succeeded"),
        ("j-other", None, "failed"),
    ]
    assert duplicates == 2

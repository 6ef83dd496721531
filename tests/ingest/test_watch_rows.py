"""The watch a delivery starts for a job it creates unfinished, and ends when it finishes one, in
the transaction that stores it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select, update

from app import models
from app.ingest.admission import admit
from app.polling.watches import DEFAULT_WATCH
from tests.api.payloads import ci_json, media_lab_list
from tests.ingest.batches import stored
from tests.ingest.submissions import detected

HEARD = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def store(engine: Engine, *bodies: bytes, at: datetime = HEARD) -> None:
    """The bodies stored in one transaction, received at `at`."""
    intakes = [admit(detected(body, received_at=at), suno_key=None, max_jobs=10) for body in bodies]
    with engine.begin() as connection:
        stored(connection, intakes)


def watches(engine: Engine) -> dict[str, dict[str, Any]]:
    watch, job = models.JobWatch, models.Job
    query = select(
        job.job_id,
        watch.status,
        watch.run_after,
        watch.give_up_at,
        watch.polls,
        watch.leased_by,
    ).join(job, job.id == watch.job_pk)
    with engine.connect() as connection:
        return {row.job_id: dict(row._mapping) for row in connection.execute(query)}


def test_a_job_heard_of_unfinished_is_watched_from_then(engine: Engine) -> None:
    store(engine, ci_json("running", "Running"), media_lab_list(["submitted"], state=1))

    found = watches(engine)
    assert set(found) == {"running", "submitted"}
    for watch in found.values():
        assert watch["status"] == "waiting"
        assert watch["run_after"] == HEARD + DEFAULT_WATCH.poll_after
        assert watch["give_up_at"] == HEARD + DEFAULT_WATCH.give_up_after
        assert (watch["polls"], watch["leased_by"]) == (0, None)


def test_a_job_that_arrives_final_is_never_watched(engine: Engine) -> None:
    store(engine, ci_json("done", "Success"), media_lab_list(["failed"], state=4))

    assert watches(engine) == {}


def test_a_later_delivery_of_an_unfinished_job_keeps_its_watch(engine: Engine) -> None:
    """The first poll is reckoned from when the job was first heard of: progress reports do not
    postpone it (a provider that reports progress and never finishes is still polled)."""
    store(engine, ci_json("t-1", "Submitted"))
    store(engine, ci_json("t-1", "Running"), at=HEARD + timedelta(minutes=5))

    assert watches(engine)["t-1"]["run_after"] == HEARD + DEFAULT_WATCH.poll_after


def test_the_delivery_that_finishes_a_job_ends_its_watch_and_any_lease_on_it(
    engine: Engine,
) -> None:
    store(engine, ci_json("t-1", "Running"), ci_json("t-2", "Running"))
    with engine.begin() as connection:  # a poller holds t-1's watch
        connection.execute(
            update(models.JobWatch)
            .where(
                models.JobWatch.job_pk
                == select(models.Job.id).where(models.Job.job_id == "t-1").scalar_subquery()
            )
            .values(status="polling", polls=2, leased_by="poller", leased_until=HEARD)
        )
    store(engine, ci_json("t-1", "Success", end="2024-01-01T10:05:00+0800"))

    found = watches(engine)
    assert {k: v for k, v in found["t-1"].items() if k != "give_up_at"} == {
        "job_id": "t-1",
        "status": "done",
        "run_after": None,
        "polls": 2,
        "leased_by": None,
    }
    assert found["t-2"]["status"] == "waiting"


def test_a_job_created_and_finished_in_one_batch_ends_the_watch_it_got(engine: Engine) -> None:
    store(engine, ci_json("t-1", "Running"), ci_json("t-1", "Failed", code="E", message="no"))

    assert watches(engine)["t-1"]["status"] == "done"


def test_a_duplicate_final_delivery_leaves_an_ended_watch_alone(engine: Engine) -> None:
    store(engine, ci_json("t-1", "Running"))
    store(engine, ci_json("t-1", "Success"))
    store(engine, ci_json("t-1", "Success"), ci_json("t-1", "Running"))

    assert watches(engine)["t-1"]["status"] == "done"

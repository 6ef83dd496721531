"""One batch that creates some jobs and merges into others, a job more than once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, text

from app.ingest.committer import Answer, Committer
from app.ingest.intake import Arrival, Outcome, Receipt, Submission
from tests.api.payloads import ci_json


@pytest.fixture
def committer(engine: Engine) -> Iterator[Committer]:
    committer = Committer(engine, suno_key=None, timeout_s=5)
    yield committer
    committer.close()


def commit(committer: Committer, *deliveries: tuple[str, str]) -> list[Answer]:
    arrivals = [
        Arrival(datetime.now(UTC), "auto", None, None, {}, ci_json(job_id, state))
        for job_id, state in deliveries
    ]
    return committer.commit([Submission(arrival, expected=None) for arrival in arrivals])


def outcome(answer: Answer) -> tuple[str, str, bool]:
    assert isinstance(answer, Receipt), answer
    (job,) = answer.jobs
    return job.job_id, job.state.value, job.duplicate


def test_a_batch_creates_new_jobs_and_merges_into_known_ones_in_arrival_order(
    committer: Committer, engine: Engine
) -> None:
    (first,) = commit(committer, ("j-known", "Running"))
    assert outcome(first) == ("j-known", "running", False)

    answers = commit(
        committer,
        ("j-new", "Running"),
        ("j-known", "Success"),
        ("j-new", "Success"),
        ("j-known", "Success"),
        ("j-other", "Failed"),
        ("j-new", "Running"),
    )

    assert [outcome(answer) for answer in answers] == [
        ("j-new", "running", False),
        ("j-known", "succeeded", False),
        ("j-new", "succeeded", False),
        ("j-known", "succeeded", True),
        ("j-other", "failed", False),
        ("j-new", "succeeded", True),
    ]
    assert [a.outcome for a in answers if isinstance(a, Receipt)] == [
        Outcome.ACCEPTED,
        Outcome.ACCEPTED,
        Outcome.ACCEPTED,
        Outcome.DUPLICATE,
        Outcome.ACCEPTED,
        Outcome.DUPLICATE,
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

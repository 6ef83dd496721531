"""The work queue: leases, retries, and workers that never hold one task together."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select, text

from app import models
from app.work.queue import QueueTable, backoff, claim, release, renew, settle
from tests.api.payloads import suno_json
from tests.ingest.file_rows import store

FILES = QueueTable.of(models.JobFile)
LEASE = timedelta(minutes=5)


def queued(engine: Engine, tasks: int) -> datetime:
    """`tasks` due tasks (the stems of Suno callbacks, two each), due from their arrival; a time
    soon after, when they all are."""
    store(engine, *(suno_json(f"t-{number}") for number in range(tasks // 2)))
    return datetime.now(UTC) + timedelta(seconds=1)


def claimed_ids(engine: Engine, *, worker: str, at: datetime, limit: int = 10) -> list[int]:
    with engine.begin() as connection:
        rows = claim(connection, FILES, worker=worker, now=at, lease=LEASE, limit=limit)
        return sorted(row.id for row in rows)


def attempts(engine: Engine) -> dict[int, int]:
    with engine.connect() as connection:
        rows = connection.execute(select(models.JobFile.id, models.JobFile.attempts))
        return {task: count for task, count in rows}


def test_a_leased_task_is_nobody_elses_until_its_lease_runs_out(engine: Engine) -> None:
    soon = queued(engine, 4)

    first = claimed_ids(engine, worker="a", at=soon, limit=3)
    second = claimed_ids(engine, worker="b", at=soon)
    after_lease = claimed_ids(engine, worker="c", at=soon + LEASE)

    assert (len(first), len(second)) == (3, 1)
    assert set(first).isdisjoint(second)
    # Worker a died: c takes its tasks and b's, each attempt counted.
    assert after_lease == sorted(first + second)
    assert set(attempts(engine).values()) == {2}


def test_a_renewed_lease_keeps_the_tasks_past_the_first_lease(engine: Engine) -> None:
    soon = queued(engine, 2)
    held = claimed_ids(engine, worker="a", at=soon)
    with engine.begin() as connection:
        renewed = renew(connection, FILES, held, worker="a", until=soon + 2 * LEASE)

    assert (len(held), renewed) == (2, 2)
    assert claimed_ids(engine, worker="b", at=soon + LEASE) == []
    assert claimed_ids(engine, worker="b", at=soon + 2 * LEASE) == held


def test_a_worker_that_lost_its_lease_writes_nothing(engine: Engine) -> None:
    soon = queued(engine, 2)
    [task, _] = claimed_ids(engine, worker="a", at=soon)
    claimed_ids(engine, worker="b", at=soon + LEASE)

    with engine.begin() as connection:
        renewed = renew(connection, FILES, [task], worker="a", until=soon + 2 * LEASE)
        settled = settle(connection, FILES, task, worker="a", values={"status": "stored"})
        status = connection.scalar(select(models.JobFile.status).where(models.JobFile.id == task))

    assert (renewed, settled, status) == (0, False, "pending")


def test_a_retried_task_is_due_again_only_at_its_time(engine: Engine) -> None:
    soon = queued(engine, 2)
    [task, other] = claimed_ids(engine, worker="a", at=soon)
    retry_at = soon + timedelta(minutes=1)
    with engine.begin() as connection:
        assert settle(
            connection, FILES, task, worker="a", values={"error": "503"}, retry_at=retry_at
        )
        assert settle(connection, FILES, other, worker="a", values={"status": "stored"})

    assert claimed_ids(engine, worker="b", at=retry_at - timedelta(seconds=1)) == []
    assert claimed_ids(engine, worker="b", at=retry_at) == [task]
    assert claimed_ids(engine, worker="c", at=retry_at + 2 * LEASE) == [task]


def test_a_released_task_is_due_at_once_and_its_attempt_uncounted(engine: Engine) -> None:
    soon = queued(engine, 2)
    tasks = claimed_ids(engine, worker="a", at=soon)
    with engine.begin() as connection:
        release(connection, FILES, tasks, worker="a")

    assert attempts(engine) == dict.fromkeys(tasks, 0)
    assert claimed_ids(engine, worker="b", at=soon) == tasks


@pytest.mark.postgres_only
def test_workers_in_concurrent_transactions_skip_each_others_tasks(engine: Engine) -> None:
    soon = queued(engine, 4)
    with engine.connect() as holding, engine.connect() as other, holding.begin():
        first = claim(holding, FILES, worker="a", now=soon, lease=LEASE, limit=2)
        with other.begin():
            # Waiting for a's row locks instead of skipping them would fail here.
            other.execute(text("SET LOCAL lock_timeout = '1ms'"))
            second = claim(other, FILES, worker="b", now=soon, lease=LEASE, limit=4)

    assert len(first) == 2
    assert len(second) == 2
    assert {row.id for row in first}.isdisjoint(row.id for row in second)


def test_backoff_grows_exponentially_to_its_cap_and_is_jittered() -> None:
    base, cap = timedelta(seconds=10), timedelta(minutes=10)
    rng = random.Random(7)
    waits = {n: [backoff(n, base=base, cap=cap, rng=rng) for _ in range(200)] for n in (1, 3, 9)}

    for n, step in ((1, 10), (3, 40), (9, 600)):
        seconds = [wait.total_seconds() for wait in waits[n]]
        assert step / 2 <= min(seconds) < max(seconds) <= step

"""A duplicate storm across two server processes on PostgreSQL.

50 jobs of all three families, 20 deliveries each, all sent at once in random order to two
processes: most are identical copies of the job's final callback, and the CI and Media Lab jobs
also get stale Submitted/Running callbacks mixed in. Exactly one job each must come out, in its
final state, having never moved backwards, with all 1,000 deliveries recorded and no 5xx.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from tests.api.payloads import ci_json, suno_json
from tests.conftest import Backend
from tests.reliability.rawhttp import Answer, Connection
from tests.reliability.support import (
    STAGE,
    assert_consistent,
    figures,
    media_lab_json,
    server_env,
)
from tests.servers import server_process

pytestmark = [pytest.mark.anyio, pytest.mark.postgres_only, pytest.mark.servers]

JOBS = 50
COPIES = 20
STALE_COPIES = 5  # of a CI or Media Lab job's 20: 2 Submitted, 3 Running
CI_FINALS = {"Success": "succeeded", "Failed": "failed", "Cancel": "canceled"}
MEDIA_LAB_FINALS = {3: "succeeded", 4: "failed", 5: "canceled"}
SUNO_FINALS = {200: "succeeded", 500: "failed"}
CONNECTIONS = 100  # in flight at once, half to each process


def job_deliveries(n: int, prefix: str) -> tuple[tuple[str, str], str, list[bytes]]:
    """Job n's (provider, job id), its expected final state, and its 20 deliveries."""
    job_id = f"{prefix}-{n}"
    family, variant = n % 3, n // 3
    if family == 0:
        ci_state, final = list(CI_FINALS.items())[variant % len(CI_FINALS)]
        finished = ci_json(job_id, ci_state, code="Success" if final == "succeeded" else "E1")
        stale = [ci_json(job_id, "Submitted")] * 2 + [ci_json(job_id, "Running")] * 3
        return ("tencent-ci", job_id), final, [finished] * (COPIES - STALE_COPIES) + stale
    if family == 1:
        state, final = list(MEDIA_LAB_FINALS.items())[variant % len(MEDIA_LAB_FINALS)]
        stale = [media_lab_json(job_id, 1)] * 2 + [media_lab_json(job_id, 2)] * 3
        bodies = [media_lab_json(job_id, state)] * (COPIES - STALE_COPIES) + stale
        return ("tencent-media-lab", job_id), final, bodies
    code, final = list(SUNO_FINALS.items())[variant % len(SUNO_FINALS)]
    return ("suno", job_id), final, [suno_json(job_id, code)] * COPIES


async def test_duplicate_storm_across_two_processes_makes_one_final_job_each(
    backend: Backend, engine: Engine, tmp_path: Path
) -> None:
    prefix = f"storm-{random.randrange(10**9)}"
    expected: dict[tuple[str, str], str] = {}
    posts: list[tuple[str, bytes]] = []
    for n in range(JOBS):
        key, final, bodies = job_deliveries(n, prefix)
        expected[key] = final
        posts += [(key[0], body) for body in bodies]
    random.shuffle(posts)

    env = server_env(backend.url)
    with server_process(env, tmp_path) as first, server_process(env, tmp_path) as second:
        queue, answers = iter(posts), []
        async with asyncio.TaskGroup() as senders:
            for _ in range(CONNECTIONS // 2):
                senders.create_task(send_from(queue, first.url, answers))
                senders.create_task(send_from(queue, second.url, answers))
        alive = first.process.poll() is None and second.process.poll() is None

    statuses = Counter(answer.status for answer in answers)
    jobs, deliveries, events = stored_storm(engine, prefix)
    wrong = {
        key: jobs.get(key) for key, final in expected.items() if jobs.get(key) != (final, COPIES)
    }
    backwards = {key: chain for key, chain in events.items() if not moves_forward(chain)}
    figures(
        "duplicate storm, postgresql, 2 processes",
        jobs=JOBS,
        requests_sent=len(posts),
        concurrent_connections=CONNECTIONS,
        answers=dict(statuses),
        stale_deliveries_mixed_in=sum(STALE_COPIES for n in range(JOBS) if n % 3 != 2),
        jobs_stored=len(jobs),
        jobs_in_wrong_state=len(wrong),
        jobs_moved_backwards=len(backwards),
        deliveries_recorded=deliveries,
        deliveries_lost=len(posts) - deliveries,
    )
    assert alive
    assert statuses == {200: len(posts)}
    assert len(jobs) == JOBS
    assert wrong == {}
    assert backwards == {}
    assert deliveries == JOBS * COPIES
    assert_consistent(engine)


async def send_from(queue: Iterator[tuple[str, bytes]], url: str, answers: list[Answer]) -> None:
    """Post what the shared queue holds, one after another on one connection, until it is dry."""
    async with Connection.open(url) as connection:
        for provider, body in queue:
            answers.append(await connection.request("POST", f"/callbacks/{provider}", body))


def stored_storm(
    engine: Engine, prefix: str
) -> tuple[dict[tuple[str, str], tuple[str, int]], int, dict[tuple[str, str], list[str]]]:
    """The storm's jobs (state, delivery count), its deliveries, and each job's state changes."""
    like = {"prefix": f"{prefix}-%"}
    with engine.connect() as connection:
        jobs = {
            (row.provider, row.job_id): (row.state, row.deliveries)
            for row in connection.execute(
                text(
                    "SELECT provider, job_id, state, deliveries FROM job WHERE job_id LIKE :prefix"
                ),
                like,
            )
        }
        deliveries = connection.scalar(
            text(
                "SELECT count(DISTINCT l.delivery_id) FROM delivery_job l"
                " JOIN job j ON j.id = l.job_pk WHERE j.job_id LIKE :prefix"
            ),
            like,
        )
        events: dict[tuple[str, str], list[str]] = {}
        for row in connection.execute(
            text(
                "SELECT j.provider, j.job_id, e.to_state FROM job_event e JOIN job j"
                " ON j.id = e.job_pk WHERE j.job_id LIKE :prefix ORDER BY e.id"
            ),
            like,
        ):
            events.setdefault((row.provider, row.job_id), []).append(row.to_state)
    return jobs, int(deliveries), events


def moves_forward(chain: list[str]) -> bool:
    """Each state change goes to a later stage, and only one reaches a final state."""
    stages = [STAGE[state] for state in chain]
    return stages == sorted(set(stages)) and stages[-1] == STAGE["succeeded"]

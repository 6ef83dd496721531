"""Many identical deliveries at once: one job, every delivery recorded, no 5xx.

In one process the writer serializes them; across processes only the database's own
INSERT ... ON CONFLICT keeps them apart, which is what the second test proves on both backends.
"""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import httpx
import orjson
import pytest
from sqlalchemy import Engine, text

from tests.api.payloads import ci_json
from tests.conftest import Backend
from tests.reliability.support import server_env
from tests.servers import running_server

pytestmark = [pytest.mark.anyio, pytest.mark.servers]
COPIES = 50


def _assert_one_job_from_every_delivery(engine: Engine, answers: list[httpx.Response]) -> None:
    assert [answer.status_code for answer in answers] == [200] * COPIES
    fresh = [answer for answer in answers if not answer.json()["duplicate"]]
    assert len(fresh) == 1
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM job")) == 1
        assert connection.scalar(text("SELECT deliveries FROM job")) == COPIES
        assert connection.scalar(text("SELECT count(*) FROM delivery")) == COPIES
        assert connection.scalar(text("SELECT count(*) FROM delivery_job")) == COPIES
        assert connection.scalar(text("SELECT count(*) FROM job_event")) == 1
        outcomes = connection.execute(
            text("SELECT outcome, count(*) FROM delivery GROUP BY outcome ORDER BY outcome")
        ).all()
    assert [tuple(row) for row in outcomes] == [("accepted", 1), ("duplicate", COPIES - 1)]


async def test_concurrent_identical_deliveries_in_one_process(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    body = ci_json("j-storm", "Success", outputs=("o/v.mp3", "o/a.mp3"))
    answers = await asyncio.gather(
        *(client.post("/callbacks/tencent-ci", content=body) for _ in range(COPIES))
    )
    _assert_one_job_from_every_delivery(engine, list(answers))


async def test_concurrent_identical_deliveries_across_two_server_processes(
    backend: Backend, engine: Engine, tmp_path: Path
) -> None:
    env = server_env(backend.url)
    body = ci_json("j-storm-2", "Success", outputs=("o/v.mp3", "o/a.mp3"))
    with (
        running_server(env, tmp_path) as first,
        running_server(env, tmp_path) as second,
    ):
        async with httpx.AsyncClient(timeout=30) as http:
            urls = itertools.islice(itertools.cycle([first, second]), COPIES)
            answers = await asyncio.gather(
                *(http.post(f"{url}/callbacks/tencent-ci", content=body) for url in urls)
            )
    _assert_one_job_from_every_delivery(engine, list(answers))


async def test_deliveries_touching_the_same_jobs_in_opposite_orders_across_processes(
    backend: Backend, engine: Engine, tmp_path: Path
) -> None:
    """Row locks taken in different orders by two processes must not deadlock into 503s."""
    job_ids = [f"j-cross-{n}" for n in range(8)]

    def delivery(ids: list[str], state: str) -> bytes:
        details = [{"JobId": job_id, "State": state, "Tag": "Tts"} for job_id in ids]
        return orjson.dumps({"EventName": "TaskFinish", "JobsDetail": details})

    forwards = [delivery(job_ids, state) for state in ("Running", "Success")]
    backwards = [delivery(job_ids[::-1], state) for state in ("Running", "Success")]
    env = server_env(backend.url)
    with running_server(env, tmp_path) as first, running_server(env, tmp_path) as second:
        async with httpx.AsyncClient(timeout=30) as http:
            posts = [
                http.post(f"{url}/callbacks/tencent-ci", content=body)
                for _ in range(COPIES)
                for url, bodies in ((first, forwards), (second, backwards))
                for body in bodies
            ]
            answers = await asyncio.gather(*posts)

    assert {answer.status_code for answer in answers} == {200}
    with engine.connect() as connection:
        states = connection.execute(text("SELECT DISTINCT state FROM job")).scalars().all()
        assert connection.scalar(text("SELECT count(*) FROM job")) == len(job_ids)
        assert connection.scalar(text("SELECT count(*) FROM delivery")) == len(answers)
    assert states == ["succeeded"]

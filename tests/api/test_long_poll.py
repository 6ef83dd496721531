"""Long polls (?wait=): woken only by their own job's changes, capped, and let go on disconnect."""

from __future__ import annotations

import asyncio
import select
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import Engine, event

from app.config import Settings
from app.main import create_app
from app.watch import JobWatch
from tests.api.payloads import ci_json
from tests.conftest import API_TOKEN, Backend
from tests.servers import running_server

pytestmark = [pytest.mark.anyio, pytest.mark.servers]
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
JOB = "/v1/jobs/tencent-ci/{}"
PATIENCE_S = 30  # generous: only a broken implementation takes this long


@dataclass
class Statements:
    """What a process's read engine runs: looks at one job, and polls for changes."""

    lookups: int = 0
    polls: int = 0
    listening: list[Engine] = field(default_factory=list)

    def listen(self, engine: Engine) -> None:
        event.listen(engine, "before_cursor_execute", self._count)

    def _count(self, *args: Any) -> None:
        statement: str = args[2]
        if "FROM job" in statement and "job.job_id = " in statement:
            self.lookups += 1
        elif "last_tx BETWEEN" in statement:
            self.polls += 1


async def until(condition: Callable[[], bool]) -> None:
    deadline = asyncio.get_running_loop().time() + PATIENCE_S
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "gave up waiting"
        await asyncio.sleep(0.01)


@asynccontextmanager
async def serving(
    settings: Settings,
) -> AsyncIterator[tuple[httpx.AsyncClient, Statements, JobWatch]]:
    """The application in process, with its read engine's statements counted, and its watch."""
    app = create_app(settings)
    async with LifespanManager(app) as manager:
        statements = Statements()
        statements.listen(app.state.read_db.engine.sync_engine)
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://stemhook", timeout=PATIENCE_S * 2
        ) as client:
            yield client, statements, app.state.watch


async def post(client: httpx.AsyncClient, job_id: str, state: str) -> None:
    answer = await client.post("/callbacks/tencent-ci", content=ci_json(job_id, state))
    assert answer.status_code == 200, answer.text


def waiting_for(client: httpx.AsyncClient, job_id: str) -> asyncio.Task[httpx.Response]:
    return asyncio.create_task(
        client.get(JOB.format(job_id), params={"wait": PATIENCE_S}, headers=AUTH)
    )


async def test_callbacks_wake_only_the_waiters_of_their_jobs(
    backend: Backend, engine: Engine
) -> None:
    waiters, callbacks = 30, 10
    # The cross-process poll is not what this test is about: rarely, if ever, during it.
    async with serving(backend.settings(wait_poll_s=5)) as (client, statements, _):
        waits = [waiting_for(client, f"w-{n}") for n in range(waiters)]
        await until(lambda: statements.lookups >= waiters)
        for n in range(callbacks):
            await post(client, f"unrelated-{n}", "Running")
        for n in range(waiters):
            await post(client, f"w-{n}", "Success")
        answers = await asyncio.gather(*waits)

    assert [answer.json()["state"] for answer in answers] == ["succeeded"] * waiters
    # Each waiter: its first look, one after its own job changed, at most one after a first
    # poll; not one per callback (waiters x callbacks = 300).
    assert statements.lookups <= 3 * waiters


async def test_other_processes_callbacks_wake_only_the_waiters_of_their_jobs(
    backend: Backend, engine: Engine
) -> None:
    waiters, callbacks = 20, 5
    settings = backend.settings(wait_poll_s=0.05)
    async with (
        serving(settings) as (waiting, statements, _),
        serving(settings) as (receiving, _, _),
    ):
        waits = [waiting_for(waiting, f"far-{n}") for n in range(waiters)]
        await until(lambda: statements.lookups >= waiters)
        for n in range(callbacks):
            await post(receiving, f"unrelated-{n}", "Running")
            # Two polls later the waiting process has seen this callback.
            polls = statements.polls
            await until(lambda polls=polls: statements.polls >= polls + 2)  # type: ignore[misc]
        looked_before_finishing = statements.lookups
        for n in range(waiters):
            await post(receiving, f"far-{n}", "Success")
        answers = await asyncio.gather(*waits)

    assert [answer.json()["state"] for answer in answers] == ["succeeded"] * waiters
    # The first look, and one more after the first poll (it has no baseline yet); not one per
    # waiter per poll that saw an unrelated change (20 x 5 = 100).
    assert looked_before_finishing <= 2 * waiters


async def test_waiters_above_the_cap_are_refused_and_final_jobs_are_not(
    backend: Backend, engine: Engine
) -> None:
    async with serving(backend.settings(max_waiters=2)) as (client, _, watch):
        await post(client, "done", "Success")
        waits = [waiting_for(client, f"cap-{n}") for n in range(2)]
        await until(lambda: watch.waiting == 2)

        refused = await client.get(JOB.format("cap-2"), params={"wait": 10}, headers=AUTH)
        final = await client.get(JOB.format("done"), params={"wait": 10}, headers=AUTH)
        await post(client, "cap-0", "Success")
        first = await waits[0]
        admitted = waiting_for(client, "cap-2")
        await post(client, "cap-1", "Failed")
        await post(client, "cap-2", "Success")
        answers = [await waits[1], await admitted]

    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "too_many_waiters"
    assert refused.headers["Retry-After"] == "1"
    assert final.json()["state"] == "succeeded"
    assert first.json()["state"] == "succeeded"
    assert [answer.json()["state"] for answer in answers] == ["failed", "succeeded"]


async def test_a_waiter_whose_client_went_away_frees_its_slot(
    backend: Backend, tmp_path: Path
) -> None:
    env = {
        "STEMHOOK_DATABASE_URL": backend.url,
        "STEMHOOK_API_TOKENS": API_TOKEN,
        "STEMHOOK_MAX_WAITERS": "1",
    }
    with running_server(env, tmp_path) as url:
        host, port = url.removeprefix("http://").split(":")
        request = (
            f"GET {JOB.format('left')}?wait=60 HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: Bearer {API_TOKEN}\r\n\r\n"
        ).encode()
        async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=PATIENCE_S) as http:

            async def another_wait() -> int:
                answer = await http.get(JOB.format("other"), params={"wait": 0.2})
                return answer.status_code

            async def a_client_holding_the_slot() -> tuple[socket.socket, float, list[int]]:
                """A raw client waiting on the only slot, seen by a probe being refused. Probes
                wait too: one that takes the slot first has the raw client answered 429, which
                is then replaced. Also when it must leave by: before its 60 s wait could end by
                itself, so that a 404 by then can only come from its slot having been freed."""
                loop = asyncio.get_running_loop()
                for _ in range(20):
                    client = socket.create_connection((host, int(port)))
                    client.sendall(request)
                    deadline = loop.time() + 55
                    statuses: list[int] = []
                    while loop.time() < deadline:
                        statuses.append(await another_wait())
                        if statuses[-1] == 429:
                            return client, deadline, statuses
                        if select.select([client], [], [], 0)[0]:  # answered: it lost the slot
                            break
                    client.close()
                raise AssertionError("no client ever held the slot")

            leaving, deadline, statuses = await a_client_holding_the_slot()
            leaving.close()
            # The first client is gone; its 60 s wait must not keep the only slot.
            await until_true(lambda: statuses[-1] == 404, another_wait, statuses, deadline)

    assert statuses[-1] == 404


async def until_true(
    condition: Callable[[], bool], step: Callable[[], Any], results: list[int], deadline: float
) -> None:
    """Repeat `step` (appending its result) until `condition` holds, before `deadline` (the
    event loop's time)."""
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"gave up; saw {results[-5:]}"
        results.append(await step())

"""SIGKILL under load: every acknowledged delivery survives, and the database stays consistent.

A real server takes callbacks from many concurrent senders and is killed (SIGKILL, no shutdown
of any kind) while requests are in flight. What was answered 2xx must be in the database as
it was sent, and its job at least as far along as acknowledged; what was in flight may or may
not be stored. A server restarted on the same database serves all of it and takes new writes.
On PostgreSQL it is also run with two replicas on the database, killed at the same moment: their
writers commit in parallel (docs/decisions/0012-parallel-writers-and-transaction-marks.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, bindparam, text

from tests.api.payloads import ci_json, suno_json
from tests.conftest import Backend
from tests.reliability.rawhttp import Connection
from tests.reliability.support import (
    AUTH,
    STAGE,
    assert_consistent,
    figures,
    last_delivery_id,
    media_lab_json,
    server_env,
)
from tests.servers import Server, server_process

pytestmark = [pytest.mark.anyio, pytest.mark.servers]

SENDERS = 32
ROUNDS = 3
ACKS_PER_ROUND = 300
MIN_IN_FLIGHT_AT_KILL = SENDERS // 2


@dataclass(frozen=True)
class Ack:
    delivery_id: int
    body: bytes
    provider: str
    job_id: str
    state: str


@dataclass
class Load:
    acks: list[Ack] = field(default_factory=list)
    refused: Counter[int] = field(default_factory=Counter)
    unanswered: int = 0
    # By server: each replica must be mid-request when they are killed.
    in_flight: Counter[str] = field(default_factory=Counter)
    in_flight_at_kill: list[int] = field(default_factory=list)
    jobs_started: int = 0


def job_sequence(n: int, prefix: str) -> tuple[str, str, list[tuple[bytes, str]]]:
    """Job n's provider, id, and its deliveries with their states, in the order sent."""
    job_id = f"{prefix}-{n}"
    if n % 3 == 0:
        running, done = ci_json(job_id, "Running"), ci_json(job_id, "Success")
        return "tencent-ci", job_id, [(running, "running"), (done, "succeeded")]
    if n % 3 == 1:
        running, done = media_lab_json(job_id, 2), media_lab_json(job_id, 3)
        return "tencent-media-lab", job_id, [(running, "running"), (done, "succeeded")]
    return "suno", job_id, [(suno_json(job_id), "succeeded")]


async def send_until_killed(
    urls: list[str], first: int, load: Load, prefix: str, killed: asyncio.Event
) -> None:
    """One sender: jobs one after another, each job's deliveries in order, on one connection to
    each server; a job's successive deliveries go to successive servers from `first` on, so
    that with two replicas both writers merge into the same jobs."""
    try:
        async with contextlib.AsyncExitStack() as stack:
            connections = [await stack.enter_async_context(Connection.open(url)) for url in urls]
            while not killed.is_set():
                provider, job_id, deliveries = job_sequence(load.jobs_started, prefix)
                load.jobs_started += 1
                for step, (body, state) in enumerate(deliveries):
                    server = (first + step) % len(urls)
                    load.in_flight[urls[server]] += 1
                    try:
                        answer = await connections[server].request(
                            "POST", f"/callbacks/{provider}", body
                        )
                    finally:
                        load.in_flight[urls[server]] -= 1
                    if answer.status != 200:
                        load.refused[answer.status] += 1
                        break
                    delivery_id = answer.json()["delivery_id"]
                    load.acks.append(Ack(delivery_id, body, provider, job_id, state))
    except OSError:  # a server died under this request
        load.unanswered += 1


async def kill_under_load(servers: list[Server], load: Load, killed: asyncio.Event) -> None:
    """SIGKILL every server, each with its writer process (its whole process group), once this
    round has had its acknowledgements and each server has its share of senders mid-request."""
    enough = len(load.acks) + ACKS_PER_ROUND
    share = MIN_IN_FLIGHT_AT_KILL // len(servers)
    async with asyncio.timeout(600):
        while len(load.acks) < enough or any(load.in_flight[s.url] < share for s in servers):
            for server in servers:
                assert server.process.poll() is None, server.log.read_text()
            await asyncio.sleep(0.002)
    load.in_flight_at_kill.append(sum(load.in_flight[server.url] for server in servers))
    for server in servers:
        os.killpg(server.process.pid, signal.SIGKILL)
    killed.set()
    for server in servers:
        await asyncio.to_thread(server.process.wait, 10)


@pytest.mark.parametrize("replicas", [1, pytest.param(2, marks=pytest.mark.postgres_only)])
async def test_acknowledged_deliveries_survive_sigkill_under_load(
    backend: Backend, engine: Engine, tmp_path: Path, replicas: int
) -> None:
    env = server_env(backend.url)
    prefix = f"crash-{backend.name}-{replicas}"
    first_id = last_delivery_id(engine) + 1
    load = Load()

    for _round in range(ROUNDS):
        killed = asyncio.Event()
        with ExitStack() as running:
            servers = [
                running.enter_context(server_process(env, tmp_path)) for _ in range(replicas)
            ]
            urls = [server.url for server in servers]
            async with asyncio.TaskGroup() as senders:
                for n in range(SENDERS):
                    senders.create_task(send_until_killed(urls, n, load, prefix, killed))
                await kill_under_load(servers, load, killed)
            assert [server.process.returncode for server in servers] == [-signal.SIGKILL] * replicas
        # The database exactly as the crash left it, before a server opens it again.
        assert_consistent(engine)

    missing_in_database = missing_deliveries(engine, load.acks)
    stored = stored_count(engine, first_id)
    with server_process(env, tmp_path) as restarted:
        async with httpx.AsyncClient(base_url=restarted.url, timeout=30, headers=AUTH) as http:
            missing_by_id = await missing_through_api(http, load.acks)
            behind = await jobs_behind_their_acks(http, load.acks)
            after = await http.post("/callbacks/suno", content=suno_json(f"{prefix}-after"))

    figures(
        f"crash durability, {backend.name}, {replicas} server process{'es' * (replicas > 1)}",
        concurrent_senders=SENDERS,
        requests_sent=len(load.acks) + sum(load.refused.values()) + load.unanswered,
        answered_2xx=len(load.acks),
        answered_other=dict(load.refused),
        unanswered=load.unanswered,
        in_flight_at_each_kill=load.in_flight_at_kill,
        stored_but_unanswered=stored - len(load.acks),
        faults_survived=f"{ROUNDS} SIGKILL + restart",
        deliveries_lost=len(missing_in_database | missing_by_id),
    )
    # Only "not now, retry" (a commit slower than the write timeout on a starved machine).
    assert set(load.refused) <= {503}
    assert missing_in_database == set()
    assert missing_by_id == set()
    assert behind == []
    assert stored >= len(load.acks)
    assert after.status_code == 200
    assert_consistent(engine)


def missing_deliveries(engine: Engine, acks: list[Ack]) -> set[int]:
    """Acknowledged deliveries not stored exactly as sent, with the job acknowledged."""
    query = text(
        "SELECT d.id, d.body, j.provider, j.job_id FROM delivery d"
        " JOIN delivery_job l ON l.delivery_id = d.id JOIN job j ON j.id = l.job_pk"
        " WHERE d.id IN :ids"
    ).bindparams(bindparam("ids", expanding=True))
    with engine.connect() as connection:
        rows = connection.execute(query, {"ids": [ack.delivery_id for ack in acks]}).all()
    found = {(row.id, bytes(row.body), row.provider, row.job_id) for row in rows}
    return {
        ack.delivery_id
        for ack in acks
        if (ack.delivery_id, ack.body, ack.provider, ack.job_id) not in found
    }


def stored_count(engine: Engine, first_id: int) -> int:
    with engine.connect() as connection:
        query = text("SELECT count(*) FROM delivery WHERE id >= :first")
        return int(connection.scalar(query, {"first": first_id}))


async def missing_through_api(http: httpx.AsyncClient, acks: list[Ack]) -> set[int]:
    limit = asyncio.Semaphore(16)

    async def served(ack: Ack) -> bool:
        async with limit:
            answer = await http.get(f"/v1/deliveries/{ack.delivery_id}")
        if answer.status_code != 200:
            return False
        detail = answer.json()
        linked = {"provider": ack.provider, "job_id": ack.job_id, "duplicate": False}
        return detail["body"] == {"encoding": "text", "content": ack.body.decode()} and detail[
            "jobs"
        ] == [linked | {"claimed_state": None}]

    found = await asyncio.gather(*(served(ack) for ack in acks))
    return {ack.delivery_id for ack, ok in zip(acks, found, strict=True) if not ok}


async def jobs_behind_their_acks(http: httpx.AsyncClient, acks: list[Ack]) -> list[str]:
    """Jobs served in an earlier stage, or with fewer deliveries, than were acknowledged."""
    by_job: dict[tuple[str, str], list[Ack]] = {}
    for ack in acks:
        by_job.setdefault((ack.provider, ack.job_id), []).append(ack)
    limit = asyncio.Semaphore(16)

    async def behind(provider: str, job_id: str, acked: list[Ack]) -> bool:
        async with limit:
            answer = await http.get(f"/v1/jobs/{provider}/{job_id}")
        if answer.status_code != 200:
            return True
        job = answer.json()
        furthest = max(STAGE[ack.state] for ack in acked)
        return STAGE[job["state"]] < furthest or job["deliveries"] < len(acked)

    checked = await asyncio.gather(*(behind(*key, acked) for key, acked in by_job.items()))
    return [job_id for (_provider, job_id), late in zip(by_job, checked, strict=True) if late]

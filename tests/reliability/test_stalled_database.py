"""PostgreSQL stops answering for two minutes while 300 connections keep posting 100 KB callbacks.

With default settings, every callback is answered 503 with Retry-After (most at once, as
overloaded: past STEMHOOK_MAX_PENDING_WRITE_BYTES nothing more is held for the database); the
server's memory (its web process, forkserver and writer process together) stays within 100 MiB
of its idle figure; once the database answers again the server takes writes by itself; and
nothing answered 200 is missing. Minutes long: runs under `python -m bench.reliability`
(--long), and in short in tests/test_backpressure.py.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from tests.api.payloads import ci_json_of_size
from tests.conftest import Backend
from tests.proxy import FaultyProxy
from tests.reliability.support import (
    assert_consistent,
    figures,
    memory_by_process,
    server_env,
)
from tests.reliability.test_outage import missing_deliveries, through
from tests.servers import server_process

pytestmark = [pytest.mark.anyio, pytest.mark.postgres_only, pytest.mark.long, pytest.mark.servers]

STALL_S = 120
CONNECTIONS = 300
BODY_BYTES = 100_000
MEMORY_GROWTH_BOUND_KIB = 100 * 1024
SAMPLE_EVERY_S = 0.25
RECOVERY_DEADLINE_S = 30
# Callbacks answered before the stall, so many at a time (the allocator's idle figure settles),
# and as many after it, once the first is answered 200 again.
WARM_UP = 600
WARM_UP_CONNECTIONS = 30


@dataclass
class Traffic:
    answers: Counter[tuple[int, str]] = field(default_factory=Counter)
    without_retry_after: int = 0
    acknowledged: dict[int | None, bytes] = field(default_factory=dict)
    # Connections the server dropped before answering: not acknowledged, so nothing is lost.
    dropped: int = 0
    numbers: Iterator[int] = field(default_factory=itertools.count)

    def named(self) -> dict[str, int]:
        return {f"{status} {code}".strip(): n for (status, code), n in self.answers.items()}


async def post(http: httpx.AsyncClient, traffic: Traffic) -> int:
    body = ci_json_of_size(f"stall-{next(traffic.numbers)}", BODY_BYTES)
    try:
        answer = await http.post("/callbacks/tencent-ci", content=body)
    except httpx.TransportError:
        traffic.dropped += 1
        return 0
    if answer.status_code == 200:
        traffic.acknowledged[answer.json()["delivery_id"]] = body
        code = ""
    else:
        code = answer.json()["error"]["code"]
        traffic.without_retry_after += "retry-after" not in answer.headers
    traffic.answers[answer.status_code, code] += 1
    return answer.status_code


async def keep_posting(http: httpx.AsyncClient, traffic: Traffic, stop: asyncio.Event) -> None:
    while not stop.is_set():
        await post(http, traffic)


async def post_many(http: httpx.AsyncClient, traffic: Traffic) -> None:
    for _ in range(WARM_UP // WARM_UP_CONNECTIONS):
        await asyncio.gather(*(post(http, traffic) for _ in range(WARM_UP_CONNECTIONS)))


def rss_kib(pid: int) -> dict[int, int]:
    return {member: memory["VmRSS"] for member, memory in memory_by_process(pid).items()}


async def sample_memory(pid: int, samples: list[dict[int, int]], stop: asyncio.Event) -> None:
    """The resident set of each of the server's processes, every SAMPLE_EVERY_S."""
    while not stop.is_set():
        samples.append(rss_kib(pid))
        await asyncio.sleep(SAMPLE_EVERY_S)


async def test_two_minutes_of_a_stalled_database_keep_memory_bounded_and_recover(
    backend: Backend, engine: Engine, proxy: FaultyProxy, tmp_path: Path
) -> None:
    limits = httpx.Limits(max_connections=CONNECTIONS)
    before, during, recovering, after = Traffic(), Traffic(), Traffic(), Traffic()
    samples: list[dict[int, int]] = []
    with server_process(server_env(through(proxy, backend)), tmp_path) as server:
        pid = server.process.pid
        async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as http:
            await post_many(http, before)
            idle = rss_kib(pid)
            proxy.mute()
            stop = asyncio.Event()
            try:
                async with asyncio.TaskGroup() as tasks:
                    tasks.create_task(sample_memory(pid, samples, stop))
                    for _ in range(CONNECTIONS):
                        tasks.create_task(keep_posting(http, during, stop))
                    await asyncio.sleep(STALL_S)
                    stop.set()
            finally:
                proxy.restore()
            restored = time.monotonic()
            while await post(http, recovering) != 200 and time.monotonic() - restored < 60:
                pass
            recovered_s = time.monotonic() - restored
            await post_many(http, after)
        alive = server.process.poll() is None

    acknowledged = (
        before.acknowledged | during.acknowledged | recovering.acknowledged | after.acknowledged
    )
    missing = missing_deliveries(engine, acknowledged)
    idle_kib = sum(idle.values())
    highest_kib = max(sum(sample.values()) for sample in samples)
    growth_kib = highest_kib - idle_kib
    # By process (web, forkserver, writer): its idle figure and its highest during the stall.
    by_process = {
        pid: f"{kib >> 10}->{max(sample.get(pid, 0) for sample in samples) >> 10}"
        for pid, kib in idle.items()
    }
    figures(
        "stalled database, postgresql, 2 minutes",
        connections=CONNECTIONS,
        body_bytes=BODY_BYTES,
        callbacks_during_stall=sum(during.answers.values()),
        answers_during_stall=during.named(),
        server_rss_mib={
            "idle": idle_kib >> 10,
            "highest": highest_kib >> 10,
            "growth": growth_kib >> 10,
        },
        rss_by_process_mib=by_process,
        connections_dropped_during_stall=during.dropped,
        recovered_after_s=round(recovered_s, 2),
        answers_after=after.named(),
        acknowledged=len(acknowledged),
        deliveries_lost=len(missing),
    )
    assert alive
    assert set(before.answers) == {(200, "")} and before.dropped == 0
    assert {status for status, _code in during.answers} == {503}
    assert during.answers[503, "overloaded"] > 0
    assert during.without_retry_after == 0
    assert growth_kib < MEMORY_GROWTH_BOUND_KIB
    assert recovered_s < RECOVERY_DEADLINE_S
    assert set(after.answers) == {(200, "")} and after.dropped == 0
    assert missing == set()
    assert_consistent(engine)

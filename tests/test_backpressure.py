"""Back-pressure between the web process and its writer, against a real server process.

While PostgreSQL stops answering, the callbacks handed to the writer stay within
STEMHOOK_MAX_PENDING_WRITE_BYTES; the rest are answered 503 (overloaded, with Retry-After) at
once instead of piling up, and the server takes writes again by itself once the database
answers. The minutes-long version, with 300 connections, is in tests/reliability.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, text

from tests.api.payloads import ci_json_of_size
from tests.conftest import Backend
from tests.proxy import FaultyProxy
from tests.reliability.support import figures, server_env, tree_memory_kib
from tests.servers import server_process

pytestmark = [pytest.mark.anyio, pytest.mark.postgres_only, pytest.mark.servers]

# The longest allowed: the writer process answers nothing of a stalled write within the burst.
WRITE_TIMEOUT_S = 10
BODY_BYTES = 100_000
PENDING_BYTES = 1024 * 1024  # room for 10 such bodies, not 11
ADMITTED = 10
CALLBACKS = 60
MEMORY_GROWTH_BOUND_KIB = 64 * 1024


async def answered(http: httpx.AsyncClient, job_id: str) -> tuple[int, str, str | None, float]:
    """Status, error code, Retry-After and seconds taken."""
    started = time.monotonic()
    answer = await http.post("/callbacks/tencent-ci", content=ci_json_of_size(job_id, BODY_BYTES))
    code = answer.json()["error"]["code"] if answer.status_code != 200 else ""
    return answer.status_code, code, answer.headers.get("retry-after"), time.monotonic() - started


async def first_success(http: httpx.AsyncClient, *, deadline_s: float) -> httpx.Response:
    deadline = time.monotonic() + deadline_s
    while True:
        answer = await http.post(
            "/callbacks/tencent-ci", content=ci_json_of_size("bp-back", BODY_BYTES)
        )
        if answer.status_code == 200 or time.monotonic() > deadline:
            return answer


async def test_a_stalled_database_holds_a_bounded_amount_of_callbacks_and_recovers(
    backend: Backend, engine: Engine, proxy: FaultyProxy, tmp_path: Path
) -> None:
    url = backend.url.replace(":5432/", f":{proxy.port}/")
    env = server_env(url, write_timeout_s=WRITE_TIMEOUT_S, max_pending_write_bytes=PENDING_BYTES)
    limits = httpx.Limits(max_connections=CALLBACKS)
    with server_process(env, tmp_path) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as http:
            before = await http.post(
                "/callbacks/tencent-ci", content=ci_json_of_size("bp-before", BODY_BYTES)
            )
            idle = tree_memory_kib(server.process.pid)
            proxy.mute()
            try:
                answers = await asyncio.gather(
                    *(answered(http, f"bp-{n}") for n in range(CALLBACKS))
                )
                peak = tree_memory_kib(server.process.pid)
                exposition = (await http.get("/metrics")).text
            finally:
                proxy.restore()
            after = await first_success(http, deadline_s=30)
        alive = server.process.poll() is None

    codes = Counter(code for _status, code, _retry, _elapsed in answers)
    refused_s = [elapsed for _s, code, _r, elapsed in answers if code == "overloaded"]
    counted = re.search(r'stemhook_database_errors_total\{kind="overloaded"\} (\S+)', exposition)
    growth_kib = peak["VmHWM"] - idle["VmRSS"]
    figures(
        "stalled database, short",
        callbacks=CALLBACKS,
        answers=dict(codes),
        slowest_refusal_s=round(max(refused_s, default=0), 3),
        memory_growth_mib=growth_kib >> 10,
    )
    assert (before.status_code, after.status_code, alive) == (200, 200, True)
    assert {status for status, _c, _r, _e in answers} == {503}
    assert all(retry_after for _s, _c, retry_after, _e in answers)
    assert codes == {"storage_unavailable": ADMITTED, "overloaded": CALLBACKS - ADMITTED}
    assert max(refused_s) < WRITE_TIMEOUT_S  # refused at once, not when the write timed out
    assert counted is not None and float(counted[1]) == CALLBACKS - ADMITTED
    assert growth_kib < MEMORY_GROWTH_BOUND_KIB
    acknowledged = [before.json()["delivery_id"], after.json()["delivery_id"]]
    with engine.connect() as connection:
        stored = connection.execute(
            text("SELECT count(*) FROM delivery WHERE id IN (:a, :b)"),
            {"a": acknowledged[0], "b": acknowledged[1]},
        ).scalar()
    assert stored == 2

"""One job: its raw payload, waiting for it to finish, its events and its deliveries."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.watch import JobKey, JobWatch
from tests.api.payloads import ci_json
from tests.conftest import API_TOKEN, Backend, open_client
from tests.reliability.support import server_env
from tests.servers import running_server

pytestmark = [pytest.mark.anyio, pytest.mark.servers]
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
JOB = "/v1/jobs/tencent-ci/{}"
# The longest wait (STEMHOOK_MAX_WAIT_S), and half of it: an answer within that came before the
# wait ended, however loaded the machine, where milliseconds are the norm.
LONG_WAIT_S = 60
BEFORE_THE_WAIT_ENDS_S = LONG_WAIT_S / 2


async def post(client: httpx.AsyncClient, body: bytes) -> int:
    answer = await client.post("/callbacks/tencent-ci", content=body)
    assert answer.status_code == 200, answer.text
    delivery_id: int = answer.json()["delivery_id"]
    return delivery_id


async def get(client: httpx.AsyncClient, path: str, **params: Any) -> httpx.Response:
    return await client.get(path, params=params, headers=AUTH)


async def test_include_raw_shows_the_latest_payload_as_sent(client: httpx.AsyncClient) -> None:
    await post(client, ci_json("j-raw", "Running"))
    latest = ci_json("j-raw", "Success", user_data="u")
    latest_id = await post(client, latest)

    plain = (await get(client, JOB.format("j-raw"))).json()
    with_raw = (await get(client, JOB.format("j-raw"), include="raw")).json()

    assert plain["raw"] is None
    raw = with_raw["raw"]
    assert (raw["delivery_id"], raw["body"]) == (
        latest_id,
        {"encoding": "text", "content": latest.decode()},
    )


async def test_a_body_that_is_not_utf8_comes_back_as_base64(client: httpx.AsyncClient) -> None:
    latin1 = (
        '<?xml version="1.0" encoding="ISO-8859-1"?><Response><JobsDetail><JobId>j-latin</JobId>'
        "<State>Success</State><Tag>Tts</Tag><Operation><UserData>caf\u00e9</UserData>"
        "</Operation></JobsDetail></Response>"
    ).encode("latin-1")
    await post(client, latin1)

    served = (await get(client, JOB.format("j-latin"), include="raw")).json()

    assert served["user_data"] == "caf\u00e9"
    body = served["raw"]["body"]
    assert body["encoding"] == "base64"
    assert base64.b64decode(body["content"]) == latin1


async def test_wait_answers_at_once_for_a_final_job(client: httpx.AsyncClient) -> None:
    await post(client, ci_json("j-done", "Success"))
    started = time.monotonic()
    answer = await get(client, JOB.format("j-done"), wait=LONG_WAIT_S)
    assert answer.json()["state"] == "succeeded"
    assert time.monotonic() - started < BEFORE_THE_WAIT_ENDS_S


async def test_wait_for_an_unknown_job_is_a_404_after_the_wait(client: httpx.AsyncClient) -> None:
    started = time.monotonic()
    answer = await get(client, JOB.format("j-never"), wait=1)
    elapsed = time.monotonic() - started
    assert answer.status_code == 404
    assert 1 <= elapsed < BEFORE_THE_WAIT_ENDS_S  # the wait asked for, not the longest one


async def test_wait_for_a_running_job_answers_with_it_when_the_wait_ends(
    client: httpx.AsyncClient,
) -> None:
    await post(client, ci_json("j-slow", "Running"))
    started = time.monotonic()
    answer = await get(client, JOB.format("j-slow"), wait=1)
    assert answer.json()["state"] == "running"
    assert time.monotonic() - started >= 1


@contextlib.contextmanager
def counting_arms(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[asyncio.Event]]:
    """One event per time a waiter arms the watch (before each look at its job), set as it
    does: a waiter is known to be waiting, or to have been woken and to wait again, without
    sleeping on it."""
    arms: list[asyncio.Event] = []
    arm = JobWatch.arm

    def counted(watch: JobWatch, key: JobKey) -> asyncio.Event:
        changed = arm(watch, key)
        arms.append(asyncio.Event())
        arms[-1].set()
        return changed

    monkeypatch.setattr(JobWatch, "arm", counted)
    yield arms


async def arms_reach(arms: list[asyncio.Event], count: int) -> None:
    async with asyncio.timeout(BEFORE_THE_WAIT_ENDS_S):
        while len(arms) < count:
            await asyncio.sleep(0)


@pytest.fixture
async def slow_polling_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client whose process looks for other processes' deliveries only every 5 s (the most
    allowed): a waiter answered sooner was woken by the callback itself."""
    async for opened in open_client(settings.model_copy(update={"wait_poll_s": 5})):
        yield opened


NOTIFIED_WITHIN_S = 4  # against milliseconds for a wake-up, and the 5 s poll


async def test_wait_answers_as_soon_as_the_job_arrives_and_finishes(
    slow_polling_client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = slow_polling_client
    with counting_arms(monkeypatch) as arms:
        waiting = asyncio.create_task(get(client, JOB.format("j-later"), wait=LONG_WAIT_S))
        await arms_reach(arms, 1)
        await post(client, ci_json("j-later", "Running"))
        await arms_reach(arms, 2)  # woken, found it running, waiting again
        await post(client, ci_json("j-later", "Success"))
        finished_at = time.monotonic()
        answer = await waiting

    assert answer.json()["state"] == "succeeded"
    assert time.monotonic() - finished_at < NOTIFIED_WITHIN_S


async def test_wait_is_woken_by_a_callback_another_process_received(
    backend: Backend, tmp_path: Path
) -> None:
    env = server_env(backend.url)
    with running_server(env, tmp_path) as waiter, running_server(env, tmp_path) as receiver:
        async with httpx.AsyncClient(timeout=30) as http:
            waiting = asyncio.create_task(
                http.get(
                    f"{waiter}{JOB.format('j-far')}", params={"wait": LONG_WAIT_S}, headers=AUTH
                )
            )
            # Only so that the wait has begun (nothing in another process says so): were it late,
            # the job would be final at its first look, and the test would still pass.
            await asyncio.sleep(0.5)
            posted = await http.post(
                f"{receiver}/callbacks/tencent-ci", content=ci_json("j-far", "Success")
            )
            posted_at = time.monotonic()
            answer = await waiting

    assert posted.status_code == 200
    assert answer.json()["state"] == "succeeded"
    assert time.monotonic() - posted_at < BEFORE_THE_WAIT_ENDS_S


async def test_events_are_the_state_history(client: httpx.AsyncClient) -> None:
    created = await post(client, ci_json("j-ev", "Submitted"))
    started = await post(client, ci_json("j-ev", "Running"))
    await post(client, ci_json("j-ev", "Running"))
    finished = await post(client, ci_json("j-ev", "Success"))

    events = (await get(client, JOB.format("j-ev") + "/events")).json()["items"]

    assert [(e["from"], e["to"], e["delivery_id"]) for e in events] == [
        (None, "submitted", created),
        ("submitted", "running", started),
        ("running", "succeeded", finished),
    ]
    assert events[0]["at"] <= events[1]["at"] <= events[2]["at"]
    assert (await get(client, JOB.format("nope") + "/events")).status_code == 404


async def test_job_deliveries_lists_every_touch_newest_first(client: httpx.AsyncClient) -> None:
    first = await post(client, ci_json("j-dl", "Running"))
    second = await post(client, ci_json("j-dl", "Running"))
    third = await post(client, ci_json("j-dl", "Success"))
    await post(client, ci_json("j-other", "Success"))

    page = (await get(client, JOB.format("j-dl") + "/deliveries", limit=2)).json()
    rest = (
        await get(client, JOB.format("j-dl") + "/deliveries", limit=2, cursor=page["next_cursor"])
    ).json()

    listed = [(item["id"], item["duplicate"]) for item in page["items"] + rest["items"]]
    assert listed == [(third, False), (second, True), (first, False)]
    assert rest["next_cursor"] is None

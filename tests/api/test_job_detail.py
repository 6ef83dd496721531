"""One job: its raw payload, waiting for it to finish, its events and its deliveries."""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.payloads import ci_json
from tests.conftest import API_TOKEN, Backend
from tests.servers import running_server

pytestmark = pytest.mark.anyio
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
JOB = "/v1/jobs/tencent-ci/{}"


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
    answer = await get(client, JOB.format("j-done"), wait=5)
    assert answer.json()["state"] == "succeeded"
    assert time.monotonic() - started < 1


async def test_wait_for_an_unknown_job_is_a_404_after_the_wait(client: httpx.AsyncClient) -> None:
    started = time.monotonic()
    answer = await get(client, JOB.format("j-never"), wait=1)
    elapsed = time.monotonic() - started
    assert answer.status_code == 404
    assert 1 <= elapsed < 2.5


async def test_wait_for_a_running_job_answers_with_it_when_the_wait_ends(
    client: httpx.AsyncClient,
) -> None:
    await post(client, ci_json("j-slow", "Running"))
    started = time.monotonic()
    answer = await get(client, JOB.format("j-slow"), wait=1)
    assert answer.json()["state"] == "running"
    assert time.monotonic() - started >= 1


async def test_wait_answers_as_soon_as_the_job_arrives_and_finishes(
    client: httpx.AsyncClient,
) -> None:
    async def finish_later() -> float:
        await asyncio.sleep(0.3)
        await post(client, ci_json("j-later", "Running"))
        await asyncio.sleep(0.3)
        await post(client, ci_json("j-later", "Success"))
        return time.monotonic()

    waiting = asyncio.create_task(get(client, JOB.format("j-later"), wait=10))
    finished_at = await finish_later()
    answer = await waiting

    assert answer.json()["state"] == "succeeded"
    assert time.monotonic() - finished_at < 0.5


async def test_wait_is_woken_by_a_callback_another_process_received(
    backend: Backend, tmp_path: Path
) -> None:
    env = {"STEMHOOK_DATABASE_URL": backend.url, "STEMHOOK_API_TOKENS": API_TOKEN}
    with running_server(env, tmp_path) as waiter, running_server(env, tmp_path) as receiver:
        async with httpx.AsyncClient(timeout=30) as http:
            waiting = asyncio.create_task(
                http.get(f"{waiter}{JOB.format('j-far')}", params={"wait": 20}, headers=AUTH)
            )
            await asyncio.sleep(0.5)
            posted = await http.post(
                f"{receiver}/callbacks/tencent-ci", content=ci_json("j-far", "Success")
            )
            posted_at = time.monotonic()
            answer = await waiting

    assert posted.status_code == 200
    assert answer.json()["state"] == "succeeded"
    assert time.monotonic() - posted_at < 2


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

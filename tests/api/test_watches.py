"""Jobs registered before any delivery (PUT .../expect), the watch every job shows, listing jobs
by it, and asking for a poll now (POST .../poll)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import httpx
import pytest
from sqlalchemy import Engine, select, update

from app import models
from tests.api.payloads import ci_json, suno_json
from tests.conftest import API_TOKEN, Backend, open_client

pytestmark = pytest.mark.anyio
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
# Suno tasks are polled (a fake key; the base is refused without a lookup, and no poller runs
# within these tests' minutes); Media Lab and Tencent CI are not configured.
POLLED = {"suno_api_key": "suno-test-key"}


@pytest.fixture
async def polled(backend: Backend, engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    async for client in open_client(backend.settings(**POLLED)):
        yield client


async def expect(client: httpx.AsyncClient, path: str, **body: Any) -> httpx.Response:
    return await client.put(f"/v1/jobs/{path}/expect", json=body or None, headers=AUTH)


def _seconds(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


async def test_a_registered_job_exists_at_once_submitted_and_waiting(
    polled: httpx.AsyncClient,
) -> None:
    before = datetime.now(UTC)
    answer = await expect(
        polled, "suno/t-1", custom_id="mine", user_data="u", poll_after_s=90, give_up_after_s=600
    )
    after = datetime.now(UTC)

    assert answer.status_code == 201, answer.text
    job = answer.json()
    assert (job["state"], job["deliveries"], job["custom_id"], job["user_data"]) == (
        "submitted",
        0,
        "mine",
        "u",
    )
    assert job["outputs"] == []
    registered = _seconds(job["first_received_at"])
    assert before - timedelta(seconds=1) <= registered <= after
    watch = job["watch"]
    assert (watch["status"], watch["polls"], watch["last_error"]) == ("waiting", 0, None)
    assert _seconds(watch["next_poll_at"]) == registered + timedelta(seconds=90)
    fetched = await polled.get("/v1/jobs/suno/t-1", headers=AUTH)
    assert fetched.json() == job


async def test_registering_again_or_after_the_callback_changes_nothing(
    polled: httpx.AsyncClient,
) -> None:
    first = (await expect(polled, "suno/t-1", custom_id="first")).json()
    again = await expect(polled, "suno/t-1", custom_id="second", poll_after_s=5)
    assert (again.status_code, again.json()) == (200, first)

    assert (await polled.post("/callbacks/suno", content=suno_json("t-2"))).status_code == 200
    known = (await polled.get("/v1/jobs/suno/t-2", headers=AUTH)).json()
    late = await expect(polled, "suno/t-2", custom_id="late")
    assert (late.status_code, late.json()) == (200, known)
    assert known["watch"]["status"] == "idle"


async def test_the_callback_finishes_a_registered_job_and_ends_its_watch(
    polled: httpx.AsyncClient,
) -> None:
    registered = (await expect(polled, "suno/t-1", custom_id="mine")).json()

    assert (await polled.post("/callbacks/suno", content=suno_json("t-1"))).status_code == 200

    job = (await polled.get("/v1/jobs/suno/t-1", headers=AUTH)).json()
    assert (job["state"], job["deliveries"], job["custom_id"]) == ("succeeded", 1, "mine")
    assert [output["role"] for output in job["outputs"]] == ["accompaniment", "vocals"]
    assert job["first_received_at"] == registered["first_received_at"]
    assert job["watch"] | {"last_polled_at": None} == {
        "status": "done",
        "polls": 0,
        "last_polled_at": None,
        "next_poll_at": None,
        "last_error": None,
    }
    events = (await polled.get("/v1/jobs/suno/t-1/events", headers=AUTH)).json()["items"]
    assert [(event["from"], event["to"]) for event in events] == [("submitted", "succeeded")]


async def test_a_long_poll_on_a_registered_job_returns_when_its_callback_comes(
    polled: httpx.AsyncClient,
) -> None:
    await expect(polled, "suno/t-1")
    answers: list[httpx.Response] = []

    async def wait() -> None:
        answers.append(await polled.get("/v1/jobs/suno/t-1?wait=60", headers=AUTH))

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(wait)
        await anyio.sleep(0.2)  # the waiter is in; the answer does not depend on it
        await polled.post("/callbacks/suno", content=suno_json("t-1"))

    [answer] = answers
    assert answer.json()["state"] == "succeeded"


async def test_a_registration_says_what_it_may_hold(polled: httpx.AsyncClient) -> None:
    unknown_field = await expect(polled, "suno/t-1", callback_url="https://example.org/")
    too_soon = await expect(polled, "suno/t-1", poll_after_s=0)
    not_an_object = await polled.put("/v1/jobs/suno/t-1/expect", json=[1], headers=AUTH)
    ci = await expect(polled, "tencent-ci/j-1", bucket="media-1250000000", region="ap-guangzhou")

    assert [a.status_code for a in (unknown_field, too_soon, not_an_object)] == [422] * 3
    assert ci.status_code == 201
    assert ci.json()["input"] | {"object": None, "url": None} == {
        "bucket": "media-1250000000",
        "region": "ap-guangzhou",
        "object": None,
        "url": None,
    }
    assert ci.json()["watch"]["status"] == "not_configured"
    assert (await polled.put("/v1/jobs/suno/t-9/expect")).status_code == 401


async def test_jobs_are_listed_by_their_watch(polled: httpx.AsyncClient, engine: Engine) -> None:
    await expect(polled, "suno/waiting")
    await expect(polled, "suno/polling")
    await expect(polled, "suno/gave-up")
    await expect(polled, "tencent-ci/unconfigured")
    await expect(polled, "suno/done")
    for body in (suno_json("done"), suno_json("idle"), ci_json("ci-running", "Running")):
        assert (await polled.post("/callbacks", content=body)).status_code == 200
    for job_id, status in (("polling", "polling"), ("gave-up", "gave_up")):
        _set_watch(engine, job_id, status=status)

    async def listed(*statuses: str) -> list[str]:
        query = "&".join(f"watch={status}" for status in statuses)
        page = await polled.get(f"/v1/jobs?{query}", headers=AUTH)
        assert page.status_code == 200, page.text
        return sorted(job["job_id"] for job in page.json()["items"])

    assert await listed("waiting") == ["waiting"]
    assert await listed("polling") == ["polling"]
    assert await listed("gave_up", "polling") == ["gave-up", "polling"]
    assert await listed("done") == ["done"]
    assert await listed("idle") == ["idle"]
    assert await listed("not_configured") == ["ci-running", "unconfigured"]
    assert (await polled.get("/v1/jobs?watch=lost", headers=AUTH)).status_code == 422


async def test_poll_makes_the_watch_due_now_even_one_given_up_on(
    polled: httpx.AsyncClient, engine: Engine
) -> None:
    await expect(polled, "suno/t-1", poll_after_s=3600)
    _set_watch(engine, "t-1", status="gave_up", run_after=None)

    before = datetime.now(UTC)
    answer = await polled.post("/v1/jobs/suno/t-1/poll", headers=AUTH)

    assert answer.status_code == 202, answer.text
    watch = answer.json()["watch"]
    assert watch["status"] == "polling"
    assert before - timedelta(seconds=1) <= _seconds(watch["next_poll_at"]) <= datetime.now(UTC)


async def test_poll_makes_a_waiting_watch_polling_so_that_it_is_not_put_off(
    polled: httpx.AsyncClient,
) -> None:
    """The first poll of a job heard of lately waits (app/polling/schedule.py), unless asked
    for: a watch made due on request says so."""
    await expect(polled, "suno/t-1", poll_after_s=3600)

    answer = await polled.post("/v1/jobs/suno/t-1/poll", headers=AUTH)

    assert answer.status_code == 202, answer.text
    assert answer.json()["watch"]["status"] == "polling"


async def test_there_is_nothing_to_poll_of_a_final_job_or_an_unconfigured_provider(
    polled: httpx.AsyncClient,
) -> None:
    await polled.post("/callbacks/suno", content=suno_json("final"))
    await expect(polled, "tencent-ci/j-1")

    final = await polled.post("/v1/jobs/suno/final/poll", headers=AUTH)
    unconfigured = await polled.post("/v1/jobs/tencent-ci/j-1/poll", headers=AUTH)
    unknown = await polled.post("/v1/jobs/suno/nobody/poll", headers=AUTH)

    assert [a.status_code for a in (final, unconfigured, unknown)] == [409, 409, 404]
    assert "succeeded" in final.json()["error"]["message"]
    assert "credentials" in unconfigured.json()["error"]["message"]


def _set_watch(engine: Engine, job_id: str, **values: Any) -> None:
    job = select(models.Job.id).where(models.Job.job_id == job_id).scalar_subquery()
    with engine.begin() as connection:
        connection.execute(
            update(models.JobWatch).where(models.JobWatch.job_pk == job).values(**values)
        )

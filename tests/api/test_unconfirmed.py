"""Callbacks whose final state waits for the provider's word (STEMHOOK_CONFIRM_BY_POLL) over
HTTP: acknowledged as `unconfirmed`, listed by that outcome with the state they claim, counted,
refused with the reason where the provider has said otherwise already, and replayed by the
settings of the day of the replay."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import Engine

from tests.api.payloads import suno_json
from tests.conftest import API_TOKEN, Backend, open_client
from tests.test_observability import samples

pytestmark = pytest.mark.anyio
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
# Suno is polled with a fake key at a base refused without a lookup (tests/conftest.py): the
# background poller's attempts fail, and no answer is ever stored.
CONFIRMING = {"suno_api_key": "suno-test-key", "confirm_by_poll": "suno"}


async def get(client: httpx.AsyncClient, path: str, **params: Any) -> Any:
    answer = await client.get(path, params=params, headers=AUTH)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def test_an_unconfirmed_callback_is_acknowledged_listed_and_counted(
    backend: Backend, engine: Engine
) -> None:
    async for client in open_client(backend.settings(**CONFIRMING)):
        answer = await client.post("/callbacks/suno", content=suno_json("t-1"))
        delivery_id = answer.json()["delivery_id"]
        other = await client.post("/callbacks/suno", content=suno_json("t-other"))
        listed = await get(client, "/v1/deliveries", outcome="unconfirmed", provider="suno")
        detail = await get(client, f"/v1/deliveries/{delivery_id}")
        job = await get(client, "/v1/jobs/suno/t-1")
        scraped = (await client.get("/metrics")).text

    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "status": "received",
        "delivery_id": delivery_id,
        "outcome": "unconfirmed",
        "duplicate": False,
        "jobs": [{"provider": "suno", "job_id": "t-1", "state": "submitted", "duplicate": True}],
    }
    assert [item["id"] for item in listed["items"]] == [other.json()["delivery_id"], delivery_id]
    assert (detail["outcome"], detail["error"]) == ("unconfirmed", None)
    assert detail["jobs"] == [
        {"provider": "suno", "job_id": "t-1", "duplicate": True, "claimed_state": "succeeded"}
    ]
    # Registered in its place, its watch due at once; nothing of the callback merged.
    assert (job["state"], job["kind"], job["deliveries"], job["outputs"]) == (
        "submitted",
        "unknown",
        0,
        [],
    )
    assert job["watch"]["status"] == "polling"
    counted = samples(scraped)
    unconfirmed = (("outcome", "unconfirmed"), ("provider", "suno"))
    assert counted[("stemhook_deliveries_total", unconfirmed)] == 2


async def test_a_claim_the_provider_already_contradicted_is_rejected_with_the_reason(
    backend: Backend,
) -> None:
    async for client in open_client(backend.settings()):  # the provider's word, believed
        failed = await client.post("/callbacks/suno", content=suno_json("t-2", code=451))
    async for client in open_client(backend.settings(**CONFIRMING)):
        forged = await client.post("/callbacks/suno", content=suno_json("t-2"))
        job = await get(client, "/v1/jobs/suno/t-2")

    assert failed.status_code == 200
    assert forged.status_code == 400, forged.text
    error = forged.json()["error"]
    assert (error["code"], error["message"]) == (
        "bad_payload",
        "the provider says failed; the callback claimed succeeded (job t-2)",
    )
    assert (job["state"], job["deliveries"]) == ("failed", 1)


async def test_a_replay_is_judged_by_the_settings_of_its_day(backend: Backend) -> None:
    async for client in open_client(backend.settings(**CONFIRMING)):
        held = await client.post("/callbacks/suno", content=suno_json("t-3"))
        delivery_id = held.json()["delivery_id"]
        again = await client.post(f"/v1/deliveries/{delivery_id}/replay", headers=AUTH)
    async for client in open_client(backend.settings()):
        believed = await client.post(f"/v1/deliveries/{delivery_id}/replay", headers=AUTH)
        job = await get(client, "/v1/jobs/suno/t-3")

    assert (again.status_code, again.json()["outcome"]) == (200, "unconfirmed")
    assert (believed.status_code, believed.json()["outcome"]) == (200, "accepted")
    assert (job["state"], job["deliveries"]) == ("succeeded", 1)


async def test_a_held_claim_does_not_move_its_job_in_a_listing_s_snapshot(
    backend: Backend,
) -> None:
    """A job's place in a listing is its last receipt as of the listing's first page; a claim
    held about it merged nothing, its receipt time included, so it must not key the job either
    when the job changes after that page (the job would jump behind the reader, skipped)."""
    keys = {"media_lab_secret_id": "AKIDmedialab0123", "media_lab_secret_key": "secret-0123"}
    settings = backend.settings(confirm_by_poll="tencent-media-lab", **keys)
    async for client in open_client(settings):
        for body in (media_lab("a", 2), media_lab("b", 2), media_lab("a", 3)):
            assert (await client.post("/callbacks", content=body)).status_code == 200
        first = await get(client, "/v1/jobs", limit=1)
        assert (await client.post("/callbacks", content=media_lab("a", 2))).status_code == 200
        second = await get(client, "/v1/jobs", limit=1, cursor=first["next_cursor"])

    assert [item["job_id"] for item in first["items"] + second["items"]] == ["b", "a"]


def media_lab(job_id: str, state: int) -> bytes:
    return orjson.dumps({"id": job_id, "state": state, "timing": {"createdAt": "0"}})

"""The inbox over HTTP: listing, one delivery whole, replays (one and in bulk), and stats."""

from __future__ import annotations

import base64
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select, text, update
from sqlalchemy.orm import Session

from app import models
from app.config import Settings
from app.errors import StorageUnavailable
from app.ingest.intake import Outcome, Receipt, Submission
from app.ingest.writer import Writer
from app.replay import replay_matching, replay_stored
from app.runtime import running
from tests.api.payloads import ci_json, suno_json, suno_signed
from tests.conftest import API_TOKEN, Backend, open_client, refusing_job

pytestmark = pytest.mark.anyio
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


async def get(client: httpx.AsyncClient, path: str, **params: Any) -> Any:
    answer = await client.get(path, params=params, headers=AUTH)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def test_deliveries_list_filters_and_pages(client: httpx.AsyncClient) -> None:
    accepted = (await client.post("/callbacks", content=ci_json("j-1", "Success"))).json()
    duplicate = (await client.post("/callbacks", content=ci_json("j-1", "Success"))).json()
    rejected = (await client.post("/callbacks/suno", content=b"{oops")).json()["error"]
    suno = (await client.post("/callbacks", content=suno_json("t-1"))).json()

    everything = await get(client, "/v1/deliveries")
    assert [d["id"] for d in everything["items"]] == [
        suno["delivery_id"],
        rejected["delivery_id"],
        duplicate["delivery_id"],
        accepted["delivery_id"],
    ]
    assert [d["outcome"] for d in everything["items"]] == [
        "accepted",
        "rejected",
        "duplicate",
        "accepted",
    ]
    refused = await get(client, "/v1/deliveries", outcome=["rejected", "duplicate"])
    assert [d["id"] for d in refused["items"]] == [
        rejected["delivery_id"],
        duplicate["delivery_id"],
    ]
    one = await get(client, "/v1/deliveries", outcome=["duplicate", "rejected"], limit=1)
    other = await get(
        client, "/v1/deliveries", outcome=["duplicate", "rejected"], cursor=one["next_cursor"]
    )
    assert [d["id"] for d in one["items"] + other["items"]] == [d["id"] for d in refused["items"]]
    assert other["next_cursor"] is None
    by_suno = await get(client, "/v1/deliveries", provider="suno")
    assert [d["id"] for d in by_suno["items"]] == [suno["delivery_id"], rejected["delivery_id"]]
    first = await get(client, "/v1/deliveries", limit=3)
    rest = await get(client, "/v1/deliveries", limit=3, cursor=first["next_cursor"])
    assert [d["id"] for d in first["items"] + rest["items"]] == [
        d["id"] for d in everything["items"]
    ]
    future = await get(client, "/v1/deliveries", received_after="2999-01-01T00:00:00Z")
    assert future == {"items": [], "next_cursor": None}


async def test_delivery_detail_shows_what_arrived_and_what_came_of_it(
    client: httpx.AsyncClient,
) -> None:
    body = ci_json("j-d", "Success")
    kept = (await client.post("/callbacks", content=body, headers={"X-Request-Id": "r-1"})).json()
    bad = (await client.post("/callbacks", content=b"\xff\xfe<bad")).json()["error"]

    detail = await get(client, f"/v1/deliveries/{kept['delivery_id']}")
    rejected = await get(client, f"/v1/deliveries/{bad['delivery_id']}")

    assert detail["body"] == {"encoding": "text", "content": body.decode()}
    assert detail["headers"]["x-request-id"] == "r-1"
    assert detail["jobs"] == [
        {"provider": "tencent-ci", "job_id": "j-d", "duplicate": False, "claimed_state": None}
    ]
    assert (detail["outcome"], detail["error"], detail["replays"]) == ("accepted", None, [])
    assert rejected["outcome"] == "rejected"
    assert rejected["error"] == bad["message"]
    assert base64.b64decode(rejected["body"]["content"]) == b"\xff\xfe<bad"
    missing = await client.get("/v1/deliveries/999999", headers=AUTH)
    assert missing.status_code == 404


@pytest.fixture
async def signing_client(backend: Backend, engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a service that requires Suno signatures made with SUNO_KEY."""
    async for client in open_client(backend.settings(suno_hmac_key=SUNO_KEY)):
        yield client


async def test_delivery_detail_never_shows_a_signature_or_another_credential(
    signing_client: httpx.AsyncClient, engine: Engine
) -> None:
    client = signing_client
    signed = suno_signed(SUNO_KEY, "t-shown", int(time.time()))
    posted = await client.post(
        "/callbacks", content=suno_json("t-shown"), headers={**signed, "X-Request-Id": "r-2"}
    )
    delivery_id = posted.json()["delivery_id"]
    shown = (await get(client, f"/v1/deliveries/{delivery_id}"))["headers"]
    # A delivery stored before headers were kept by allowlist.
    with engine.begin() as connection:
        connection.execute(
            update(models.Delivery)
            .where(models.Delivery.id == delivery_id)
            .values(
                headers={
                    "authorization": "Bearer old-secret",
                    "x-api-token": "old-secret",
                    "x-webhook-signature": "old-secret",
                    "x-webhook-token": "old-secret",
                    "x-webhook-hmac": "old-secret",
                    "x-webhook-passphrase": "old-secret",
                    "x-forwarded-user": "someone@example.com",
                    "x-forwarded-for": "198.51.100.23",
                    "x-request-id": "r-old",
                }
            )
        )
    older = (await get(client, f"/v1/deliveries/{delivery_id}"))["headers"]

    assert "x-webhook-signature" not in shown
    assert (shown["x-webhook-timestamp"], shown["x-request-id"]) == (
        signed["X-Webhook-Timestamp"],
        "r-2",
    )
    assert older == {"x-forwarded-for": "198.51.100.23", "x-request-id": "r-old"}


async def test_a_signature_is_kept_for_replay_and_a_replay_of_a_forgery_is_refused_again(
    signing_client: httpx.AsyncClient, engine: Engine
) -> None:
    signed = suno_signed(SUNO_KEY, "t-kept", int(time.time()))
    client = signing_client
    first = await client.post("/callbacks", content=suno_json("t-kept"), headers=signed)
    forged = await client.post(
        "/callbacks", content=suno_json("t-kept", msg="forged"), headers=signed
    )
    forged_id = forged.json()["error"]["delivery_id"]
    replayed = await client.post(
        f"/v1/deliveries/{first.json()['delivery_id']}/replay", headers=AUTH
    )
    replayed_forgery = await client.post(f"/v1/deliveries/{forged_id}/replay", headers=AUTH)

    with engine.connect() as connection:
        stored = connection.execute(
            select(models.Delivery.headers).where(models.Delivery.id == first.json()["delivery_id"])
        ).scalar_one()
    assert stored["x-webhook-signature"] == signed["X-Webhook-Signature"]
    assert first.status_code == 200 and forged.status_code == 401
    assert (replayed.status_code, replayed.json()["outcome"]) == (200, "duplicate")
    assert (replayed_forgery.status_code, replayed_forgery.json()["outcome"]) == (200, "refused")
    assert replayed_forgery.json()["jobs"] == []


async def test_replay_turns_an_orphaned_delivery_into_its_job_once_the_cause_is_gone(
    client: httpx.AsyncClient, engine: Engine, backend: Backend
) -> None:
    with refusing_job(engine, backend, "j-late"):
        orphaned = (await client.post("/callbacks", content=ci_json("j-late", "Success"))).json()
    delivery_id = orphaned["error"]["delivery_id"]

    answer = await client.post(f"/v1/deliveries/{delivery_id}/replay", headers=AUTH)
    again = await client.post(f"/v1/deliveries/{delivery_id}/replay", headers=AUTH)

    replay = answer.json()
    assert answer.status_code == 200
    assert (replay["replay_of"], replay["outcome"], replay["error"]) == (
        delivery_id,
        "accepted",
        None,
    )
    assert [job["job_id"] for job in replay["jobs"]] == ["j-late"]
    assert again.json()["outcome"] == "duplicate"
    original = await get(client, f"/v1/deliveries/{delivery_id}")
    assert original["outcome"] == "orphaned"
    assert [r["id"] for r in original["replays"]] == [
        replay["delivery_id"],
        again.json()["delivery_id"],
    ]
    job = await get(client, "/v1/jobs/tencent-ci/j-late")
    assert (job["state"], job["deliveries"]) == ("succeeded", 2)


async def test_a_replay_stores_only_the_allowed_headers_of_an_older_delivery(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    old = (await client.post("/callbacks", content=ci_json("j-old", "Success"))).json()
    # Kept before headers were stored by allowlist.
    with engine.begin() as connection:
        connection.execute(
            update(models.Delivery)
            .where(models.Delivery.id == old["delivery_id"])
            .values(headers={"authorization": "Bearer old-secret", "x-request-id": "r-old"})
        )

    replay = await client.post(f"/v1/deliveries/{old['delivery_id']}/replay", headers=AUTH)

    with engine.connect() as connection:
        stored = connection.scalar(
            select(models.Delivery.headers).where(
                models.Delivery.id == replay.json()["delivery_id"]
            )
        )
    assert stored == {"x-request-id": "r-old"}


async def test_replay_needs_the_body_and_a_known_delivery(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    kept = (await client.post("/callbacks", content=ci_json("j-purged", "Success"))).json()
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE delivery SET body = NULL WHERE id = :id"), {"id": kept["delivery_id"]}
        )

    purged = await client.post(f"/v1/deliveries/{kept['delivery_id']}/replay", headers=AUTH)
    unknown = await client.post("/v1/deliveries/424242/replay", headers=AUTH)

    assert (purged.status_code, purged.json()["error"]["code"]) == (410, "gone")
    assert unknown.status_code == 404


SUNO_KEY = "suno-hmac-key"


async def test_replay_judges_a_suno_signature_by_the_original_arrival(backend: Backend) -> None:
    key = SUNO_KEY
    body = suno_json("t-signed")
    arrived = int(time.time()) - 200  # stale by now, but fresh when the callback came
    headers = suno_signed(SUNO_KEY, "t-signed", arrived)
    async for client in open_client(backend.settings()):
        signed = (await client.post("/callbacks", content=body, headers=headers)).json()
        unsigned = (await client.post("/callbacks", content=suno_json("t-unsigned"))).json()
    async for client in open_client(backend.settings(suno_hmac_key=key)):
        good = await client.post(f"/v1/deliveries/{signed['delivery_id']}/replay", headers=AUTH)
        bad = await client.post(f"/v1/deliveries/{unsigned['delivery_id']}/replay", headers=AUTH)

    assert (good.status_code, good.json()["outcome"]) == (200, "duplicate")
    assert (bad.status_code, bad.json()["error"]["code"]) == (409, "conflict")


async def test_a_replay_of_a_replay_is_judged_by_the_original_arrival(
    backend: Backend, engine: Engine
) -> None:
    arrived = datetime.now(UTC) - timedelta(hours=1)
    headers = suno_signed(SUNO_KEY, "t-again", int(arrived.timestamp()))
    async for client in open_client(backend.settings()):
        original = await client.post("/callbacks", content=suno_json("t-again"), headers=headers)
    delivery_id = original.json()["delivery_id"]
    with Session(engine) as session:
        session.get_one(models.Delivery, delivery_id).received_at = arrived
        session.commit()
    async for client in open_client(backend.settings(suno_hmac_key=SUNO_KEY)):
        replay = await client.post(f"/v1/deliveries/{delivery_id}/replay", headers=AUTH)
        replay_id = replay.json()["delivery_id"]
        again = await client.post(f"/v1/deliveries/{replay_id}/replay", headers=AUTH)

    assert (replay.status_code, replay.json()["outcome"]) == (200, "duplicate")
    assert again.status_code == 200, again.text
    assert again.json()["replay_of"] == replay_id


async def test_bulk_replay_runs_each_matching_delivery_once(
    client: httpx.AsyncClient, engine: Engine, backend: Backend, settings: Settings, tmp_path: Path
) -> None:
    with refusing_job(engine, backend, "j-bulk"):
        for state in ("Running", "Success"):
            answer = await client.post("/callbacks", content=ci_json("j-bulk", state))
            assert answer.json()["error"]["code"] == "unstorable_payload"
    await client.post("/callbacks", content=b"not a callback")

    first = await replay_stored(settings, outcomes=(Outcome.ORPHANED,), since=None, again=False)
    second = await replay_stored(settings, outcomes=(Outcome.ORPHANED,), since=None, again=False)
    cli = subprocess.run(
        [sys.executable, "-m", "app", "replay", "--outcome", "rejected", "--outcome", "orphaned"],
        cwd=tmp_path,
        env={"STEMHOOK_DATABASE_URL": backend.url, "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    assert first == {"accepted": 2}
    assert second == {}
    assert "Replayed 1 deliveries: 1 rejected." in cli.stdout
    job = await get(client, "/v1/jobs/tencent-ci/j-bulk")
    assert job["state"] == "succeeded"


class _UnavailableAt:
    """The real writer, except that the writes numbered in `refused` (from 1) answer as it does
    when the database cannot take them."""

    def __init__(self, writer: Writer, refused: set[int]) -> None:
        self._writer, self._refused, self._count = writer, refused, 0

    async def write(self, submission: Submission) -> Receipt:
        self._count += 1
        if self._count in self._refused:
            raise StorageUnavailable("the database cannot take the write now")
        return await self._writer.write(submission)


async def test_bulk_replay_waits_out_503s_and_goes_on(
    client: httpx.AsyncClient, engine: Engine, backend: Backend, settings: Settings
) -> None:
    for job_id in ("j-wait", "j-gone", "j-next"):
        with refusing_job(engine, backend, job_id):
            await client.post("/callbacks", content=ci_json(job_id, "Success"))
    waited: list[float] = []

    async def pause(seconds: float) -> None:
        waited.append(seconds)

    async with running(settings) as runtime:
        # The first delivery is refused twice, the second on every try, the third never.
        flaky = replace(runtime, writer=_UnavailableAt(runtime.writer, {1, 2, 4, 5, 6, 7, 8, 9}))
        counts = await replay_matching(
            flaky, outcomes=(Outcome.ORPHANED,), since=None, again=False, pause=pause
        )
        later = await replay_matching(
            runtime, outcomes=(Outcome.ORPHANED,), since=None, again=False
        )

    assert counts == {"accepted": 2, "unavailable": 1}
    assert waited == [1, 2, 1, 2, 4, 8, 16]
    assert later == {"accepted": 1}
    for job_id in ("j-wait", "j-gone", "j-next"):
        assert (await get(client, f"/v1/jobs/tencent-ci/{job_id}"))["state"] == "succeeded"


async def test_stats_count_jobs_and_deliveries_in_the_window(client: httpx.AsyncClient) -> None:
    await client.post("/callbacks", content=ci_json("j-s1", "Success"))
    await client.post("/callbacks", content=ci_json("j-s1", "Success"))
    await client.post("/callbacks", content=ci_json("j-s2", "Failed", code="E"))
    await client.post("/callbacks", content=suno_json("t-s3", code=500))
    await client.post("/callbacks", content=b"{}")

    stats = await get(client, "/v1/stats")
    empty = await get(client, "/v1/stats", since="2000-01-01T00:00:00Z", until="2000-01-02")

    assert stats["jobs"] == [
        {"provider": "suno", "state": "failed", "count": 1},
        {"provider": "tencent-ci", "state": "failed", "count": 1},
        {"provider": "tencent-ci", "state": "succeeded", "count": 1},
    ]
    assert stats["deliveries"] == [
        {"outcome": "accepted", "count": 3},
        {"outcome": "duplicate", "count": 1},
        {"outcome": "rejected", "count": 1},
    ]
    assert (empty["jobs"], empty["deliveries"]) == ([], [])

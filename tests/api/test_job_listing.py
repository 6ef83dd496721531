"""GET /v1/jobs: filters, order, keyset pages that hold still while callbacks keep arriving."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import psycopg
import pytest
from sqlalchemy import Engine

from app.ingest.admission import admit
from tests.api.payloads import ci_json, suno_json
from tests.conftest import API_TOKEN, PG_ADMIN_DSN
from tests.ingest.batches import stored
from tests.ingest.submissions import detected

pytestmark = pytest.mark.anyio
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


async def post(client: httpx.AsyncClient, body: bytes) -> dict[str, Any]:
    answer = await client.post("/callbacks", content=body)
    assert answer.status_code == 200, answer.text
    received: dict[str, Any] = answer.json()
    return received


async def listing(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    answer = await client.get("/v1/jobs", params=params, headers=AUTH)
    assert answer.status_code == 200, answer.text
    page: dict[str, Any] = answer.json()
    return page


def ids(page: dict[str, Any]) -> list[str]:
    return [item["job_id"] for item in page["items"]]


def media_lab(job_id: str, custom_id: str, state: int = 3) -> bytes:
    timing = {"createdAt": "1610513575000", "startedAt": "0", "completedAt": "0"}
    return orjson.dumps({"id": job_id, "state": state, "customId": custom_id, "timing": timing})


@pytest.fixture
async def mixed(client: httpx.AsyncClient) -> None:
    """Five jobs of every family, posted in this order (so listed in the reverse one)."""
    await post(client, ci_json("j-vs", "Success", user_data="order-17"))
    await post(client, ci_json("j-fail", "Failed", code="InternalError", message="boom"))
    await post(client, media_lab("ml-1", "batch-9"))
    await post(client, media_lab("ml-2", "batch-9", state=2))
    await post(client, suno_json("t-451", code=451, msg="download failed"))


@pytest.mark.usefixtures("mixed")
async def test_newest_first_and_every_filter(client: httpx.AsyncClient) -> None:
    assert ids(await listing(client)) == ["t-451", "ml-2", "ml-1", "j-fail", "j-vs"]
    assert ids(await listing(client, provider="tencent-media-lab")) == ["ml-2", "ml-1"]
    assert ids(await listing(client, kind="separate_vocal")) == []
    assert ids(await listing(client, kind="vocal_separation")) == ["t-451"]
    assert ids(await listing(client, state="failed")) == ["t-451", "j-fail"]
    assert ids(await listing(client, state=["running", "succeeded"])) == ["ml-2", "ml-1", "j-vs"]
    assert ids(await listing(client, custom_id="batch-9")) == ["ml-2", "ml-1"]
    assert ids(await listing(client, user_data="order-17")) == ["j-vs"]
    assert ids(await listing(client, has_error="true")) == ["t-451", "j-fail"]
    assert ids(await listing(client, has_error="false")) == ["ml-2", "ml-1", "j-vs"]
    # CI jobs were created 2024-01-01T02:00:00Z, Media Lab ones 2021-01-13T04:52:55Z.
    assert ids(await listing(client, created_after="2023-12-31T00:00:00Z")) == ["j-fail", "j-vs"]
    assert ids(await listing(client, created_before="2021-01-14T00:00:00")) == ["ml-2", "ml-1"]


@pytest.mark.usefixtures("mixed")
async def test_received_window_is_half_open(client: httpx.AsyncClient) -> None:
    everything = (await listing(client))["items"]
    third = everything[2]["last_received_at"]

    newer = await listing(client, received_after=third)
    older = await listing(client, received_before=third)

    assert ids(newer) == ["t-451", "ml-2", "ml-1"]
    assert ids(older) == ["j-fail", "j-vs"]


async def test_pages_follow_each_other_without_gaps(client: httpx.AsyncClient) -> None:
    posted = [f"j-p{n:02d}" for n in range(23)]
    for job_id in posted:
        await post(client, ci_json(job_id, "Success"))

    seen, cursor, pages = [], None, 0
    while True:
        page = await listing(client, limit=5, **({"cursor": cursor} if cursor else {}))
        seen += ids(page)
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert seen == posted[::-1]
    assert pages == 5


async def test_paging_while_written_to_neither_skips_nor_repeats(
    client: httpx.AsyncClient,
) -> None:
    existing = [f"j-w{n:02d}" for n in range(30)]
    for job_id in existing:
        await post(client, ci_json(job_id, "Running"))

    seen: list[str] = []
    page = await listing(client, limit=7)
    round_ = 0
    while True:
        seen += ids(page)
        unseen = [job_id for job_id in existing if job_id not in seen]
        # Between pages: jobs not reached yet get newer deliveries (they would jump to the
        # top), jobs already seen too, and brand-new jobs arrive.
        for job_id in unseen[-2:] + seen[:1]:
            await post(client, ci_json(job_id, "Success"))
        await post(client, ci_json(f"j-new-{round_}", "Running"))
        round_ += 1
        if page["next_cursor"] is None:
            break
        page = await listing(client, limit=7, cursor=page["next_cursor"])

    assert len(seen) == len(set(seen)), "a job was listed twice"
    assert sorted(seen) == sorted(existing), "the snapshot lost or gained jobs"
    fresh = ids(await listing(client, limit=3))
    assert fresh[0].startswith("j-new-") or fresh[0] in existing


@pytest.mark.postgres_only
async def test_a_change_committed_after_a_later_one_keeps_its_job_in_the_listing(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    """Writers commit in parallel (PostgreSQL): a transaction that began first may commit last.
    Its change to a job the listing has not reached must not lift the job behind the reader.
    On SQLite, whose writers take turns, no transaction commits after a later one."""
    existing = [f"j-p{n:02d}" for n in range(10)]
    for job_id in existing:
        await post(client, ci_json(job_id, "Running"))
    intake = admit(detected(ci_json(existing[0], "Success")), suno_key=None, max_jobs=100)
    with engine.connect() as slow:
        transaction = slow.begin()
        # Begun first, it holds the older transaction number and delivery id...
        stored(slow, [intake])
        # ...while a later callback, to another job, commits before it.
        await post(client, ci_json(existing[5], "Success"))
        first = await listing(client, limit=3)
        transaction.commit()
    seen = ids(first)
    page = first
    while page["next_cursor"] is not None:
        page = await listing(client, limit=3, cursor=page["next_cursor"])
        seen += ids(page)

    assert sorted(seen) == sorted(existing), "the listing lost or repeated a job"
    assert seen[-1] == existing[0], "the job kept its place as of the listing's start"
    # A new listing sees the slow change, which arrived (was read) before the later callback.
    assert ids(await listing(client, limit=2)) == [existing[5], existing[0]]


@pytest.mark.postgres_only
async def test_a_transaction_open_in_another_database_does_not_hide_new_jobs(
    client: httpx.AsyncClient,
) -> None:
    """Transaction ids are the cluster's: the mark counts only this database's transactions."""
    with psycopg.connect(PG_ADMIN_DSN) as elsewhere:
        elsewhere.execute("SELECT pg_current_xact_id()")  # holds an id until it ends
        await post(client, ci_json("j-seen-at-once", "Running"))
        listed = ids(await listing(client))
        elsewhere.rollback()

    assert listed == ["j-seen-at-once"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"state": "exploded"}, "state"),
        ({"provider": "aws"}, "provider"),
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"created_after": "yesterday"}, "created_after"),
        ({"has_error": "maybe"}, "has_error"),
        ({"colour": "blue"}, "colour"),
        ({"cursor": "not-a-cursor"}, "cursor"),
    ],
)
async def test_bad_filter_values_are_a_422_naming_the_field(
    client: httpx.AsyncClient, params: dict[str, Any], field: str
) -> None:
    answer = await client.get("/v1/jobs", params=params, headers=AUTH)

    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "invalid_request"
    assert field in error["message"]


async def test_a_cursor_of_another_listing_is_refused(client: httpx.AsyncClient) -> None:
    for n in range(3):
        await post(client, ci_json(f"j-c{n}", "Success"))
    deliveries = await client.get("/v1/deliveries", params={"limit": 1}, headers=AUTH)
    cursor = deliveries.json()["next_cursor"]

    answer = await client.get("/v1/jobs", params={"cursor": cursor}, headers=AUTH)

    assert answer.status_code == 422
    assert "cursor" in answer.json()["error"]["message"]

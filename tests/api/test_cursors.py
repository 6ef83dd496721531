"""Paging cursors are client input: every field is checked, and one that no real page could have
given is a 422 in the shared error shape, never a 500 and never a licence for a full scan."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from app import models
from tests.api.payloads import ci_json
from tests.conftest import API_TOKEN

pytestmark = pytest.mark.anyio
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
U64_MAX = 2**64 - 1
AN_HOUR_AGO = datetime.now(UTC) - timedelta(hours=1)
TIME = AN_HOUR_AGO.isoformat()


def forged(fields: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(fields)).decode().rstrip("=")


def decoded(cursor: str) -> dict[str, Any]:
    fields: dict[str, Any] = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * 4))
    return fields


async def post_jobs(client: httpx.AsyncClient, count: int, prefix: str = "j") -> None:
    for n in range(count):
        answer = await client.post("/callbacks", content=ci_json(f"{prefix}-{n}", "Success"))
        assert answer.status_code == 200, answer.text


async def refused(client: httpx.AsyncClient, path: str, cursor: str) -> str:
    answer = await client.get(path, params={"cursor": cursor}, headers=AUTH)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["message"].startswith("cursor: ")
    message: str = error["message"]
    return message


def before_ids(listing: str) -> list[dict[str, Any]]:
    return [
        {"l": listing, "b": bad} for bad in (U64_MAX, 2**63, 0, 1, -1, True, 2.5, "5", None, [3])
    ] + [{"l": listing}, {"l": listing, "b": 3, "x": 1}]


JOB_POSITIONS = [
    {"l": "jobs", "m": U64_MAX, "t": TIME, "i": 1},
    {"l": "jobs", "m": 2**63 - 1, "t": TIME, "i": 1},
    {"l": "jobs", "m": 1, "t": TIME, "i": U64_MAX},
    {"l": "jobs", "m": 0, "t": TIME, "i": 1},
    {"l": "jobs", "m": 1, "t": TIME, "i": 0},
    {"l": "jobs", "m": 1, "t": TIME, "i": False},
    {"l": "jobs", "m": 1.0, "t": TIME, "i": 1},
    {"l": "jobs", "m": 1, "t": "2024-01-01T00:00:00", "i": 1},
    {"l": "jobs", "m": 1, "t": "0001-01-01T00:00:00+01:00", "i": 1},
    {"l": "jobs", "m": 1, "t": 1700000000, "i": 1},
    {"l": "jobs", "m": 1, "t": TIME},
    {"l": "jobs", "m": 1, "t": TIME, "i": 1, "x": None},
]


@pytest.mark.parametrize(
    ("path", "cursors"),
    [
        ("/v1/deliveries", before_ids("deliveries")),
        ("/v1/jobs/tencent-ci/j-0/deliveries", before_ids("job-deliveries")),
        ("/v1/jobs", JOB_POSITIONS),
    ],
)
async def test_a_forged_cursor_is_a_422(
    client: httpx.AsyncClient, path: str, cursors: list[dict[str, Any]]
) -> None:
    await post_jobs(client, 2)
    for fields in cursors:
        await refused(client, path, forged(fields))


async def test_a_cursor_from_before_marks_is_refused_not_misread(
    client: httpx.AsyncClient,
) -> None:
    """Cursors once carried a delivery id as "w"; read as a mark it would mean nothing."""
    await post_jobs(client, 3)

    await refused(client, "/v1/jobs", forged({"l": "jobs", "w": 2, "t": TIME, "i": 1}))


async def test_a_job_cursor_ahead_of_the_databases_mark_is_refused(
    client: httpx.AsyncClient,
) -> None:
    await post_jobs(client, 3)
    real = decoded(
        (await client.get("/v1/jobs", params={"limit": 1}, headers=AUTH)).json()["next_cursor"]
    )

    message = await refused(client, "/v1/jobs", forged(real | {"m": real["m"] + 1}))

    assert "no page" in message


def back_date_everything(engine: Engine, by: timedelta) -> None:
    with Session(engine) as session:
        for delivery in session.scalars(select(models.Delivery)):
            delivery.received_at -= by
        for job in session.scalars(select(models.Job)):
            job.first_received_at -= by
            job.last_received_at -= by
        session.commit()


async def test_a_cursor_from_a_listing_begun_too_long_ago_is_refused(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    await post_jobs(client, 3)
    first = (await client.get("/v1/jobs", params={"limit": 2}, headers=AUTH)).json()
    # Arriving after the first page, it is no sign that the listing began long ago.
    await post_jobs(client, 1, prefix="new")
    second = await client.get(
        "/v1/jobs", params={"limit": 2, "cursor": first["next_cursor"]}, headers=AUTH
    )
    # The same cursor once that job's arrival lies two hours back: the listing began before it.
    back_date_everything(engine, timedelta(hours=2))
    message = await refused(client, "/v1/jobs", first["next_cursor"])

    assert second.status_code == 200, second.text
    assert [job["job_id"] for job in second.json()["items"]] == ["j-0"]
    assert "expired" in message

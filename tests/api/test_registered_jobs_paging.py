"""A registered job (no delivery yet) that a delivery touches while a listing pages through keeps
its place, by its registration, and is listed once."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.payloads import suno_json
from tests.conftest import API_TOKEN

pytestmark = pytest.mark.anyio
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


async def _page(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    answer = await client.get("/v1/jobs", params=params, headers=AUTH)
    assert answer.status_code == 200, answer.text
    page: dict[str, Any] = answer.json()
    return page


async def test_a_registered_job_touched_while_paging_is_neither_skipped(
    client: httpx.AsyncClient,
) -> None:
    registered = await client.put("/v1/jobs/suno/reg/expect", headers=AUTH)
    assert registered.status_code == 201, registered.text
    for job_id in ("a", "b"):  # newer than the registration: listed before it
        assert (await client.post("/callbacks", content=suno_json(job_id))).status_code == 200

    first = await _page(client, limit=1)
    seen = [item["job_id"] for item in first["items"]]
    assert seen == ["b"]
    # The registered job's callback comes while the reader pages.
    assert (await client.post("/callbacks", content=suno_json("reg"))).status_code == 200
    cursor = first["next_cursor"]
    while cursor is not None:
        page = await _page(client, limit=1, cursor=cursor)
        seen += [item["job_id"] for item in page["items"]]
        cursor = page["next_cursor"]

    # Every job that existed when the listing began is listed once: "reg" existed (registered).
    assert sorted(seen) == ["a", "b", "reg"]

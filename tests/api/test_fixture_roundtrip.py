"""Every accepted fixture, posted over HTTP, stored, and read back through GET /v1/jobs.

The stored-and-served job must equal the fixture's hand-written expectation: this is the
normalized contract end to end, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from app.mirror.sources import MIRROR_OFF
from tests.conftest import API_TOKEN, FIXTURES

pytestmark = pytest.mark.anyio

SERVED_ONLY = ("deliveries", "first_received_at", "last_received_at", "raw", "watch")
FINAL = ("succeeded", "failed", "canceled")


def _accepted_fixtures() -> list[Path]:
    found = []
    for expected in sorted(FIXTURES.glob("*/*.expected.json")):
        if "jobs" in json.loads(expected.read_text()):
            stem = expected.name.removesuffix(".expected.json")
            found.extend(path for path in expected.parent.glob(f"{stem}.*") if path != expected)
    return found


@pytest.mark.parametrize("payload", _accepted_fixtures(), ids=lambda p: f"{p.parent.name}/{p.name}")
async def test_fixture_is_served_as_expected(client: httpx.AsyncClient, payload: Path) -> None:
    provider = payload.parent.name
    expected = json.loads(payload.with_name(payload.stem + ".expected.json").read_text())["jobs"]

    answer = await client.post(f"/callbacks/{provider}", content=payload.read_bytes())

    assert answer.status_code == 200, answer.text
    receipt = answer.json()
    assert receipt["status"] == "received"
    assert [job["job_id"] for job in receipt["jobs"]] == [job["job_id"] for job in expected]
    for job in expected:
        served = await client.get(
            f"/v1/jobs/{provider}/{job['job_id']}",
            headers={"Authorization": f"Bearer {API_TOKEN}"},
        )
        assert served.status_code == 200, served.text
        body = served.json()
        assert body["deliveries"] == 1
        # The copies of the files are stemhook's, not the provider's (tests run mirroring off).
        files = [output.pop("file") for output in body["outputs"]]
        assert all(file is None or file["error"] == MIRROR_OFF for file in files), files
        # Watched if it arrived unfinished; no provider is configured to be polled in tests.
        watch = "idle" if job["state"] in FINAL else "not_configured"
        assert body["watch"]["status"] == watch
        assert {key: value for key, value in body.items() if key not in SERVED_ONLY} == job

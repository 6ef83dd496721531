"""One delivery creates at most STEMHOOK_MAX_JOBS_PER_DELIVERY jobs: a longer list is kept raw
as a rejected delivery (400), so that one request cannot hold every other one behind it."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import Engine, text

from app.config import Settings
from tests.api.payloads import media_lab_list

pytestmark = pytest.mark.anyio


def stored(engine: Engine, delivery_id: int) -> tuple[str, bytes, int]:
    """The delivery's outcome and body, and how many jobs it is linked to."""
    with engine.connect() as connection:
        outcome, body = connection.execute(
            text("SELECT outcome, body FROM delivery WHERE id = :id"), {"id": delivery_id}
        ).one()
        linked = connection.scalar(
            text("SELECT count(*) FROM delivery_job WHERE delivery_id = :id"), {"id": delivery_id}
        )
    return outcome, bytes(body), int(linked)


async def test_a_list_above_the_default_cap_is_kept_rejected_and_creates_no_job(
    client: httpx.AsyncClient, settings: Settings, engine: Engine
) -> None:
    assert settings.max_jobs_per_delivery == 100
    over = media_lab_list([f"cap-{n}" for n in range(101)])

    refused = await client.post("/callbacks/tencent-media-lab", content=over)
    at_cap = await client.post(
        "/callbacks/tencent-media-lab", content=media_lab_list([f"ok-{n}" for n in range(100)])
    )

    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["code"] == "bad_payload"
    assert "101 jobs" in error["message"]
    assert "STEMHOOK_MAX_JOBS_PER_DELIVERY" in error["message"]
    assert stored(engine, error["delivery_id"]) == ("rejected", over, 0)
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM job WHERE job_id LIKE 'cap-%'")) == 0
    assert at_cap.status_code == 200
    assert len(at_cap.json()["jobs"]) == 100

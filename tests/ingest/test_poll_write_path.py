"""Poll answers through the live write path, on SQLite and PostgreSQL: stored under their poll
endpoint, merged with the callback of the same task by the same rule, replayed as poll answers."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from app import models
from app.ingest.intake import Outcome
from app.models import Delivery
from app.providers.model import Provider
from app.providers.registry import poll_endpoint
from app.runtime import running
from tests.api.payloads import suno_json, suno_signed
from tests.conftest import API_TOKEN, FIXTURES, Backend, open_client
from tests.ingest.submissions import detected, polled

pytestmark = pytest.mark.anyio

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
SUNO_KEY = "suno-hmac-key"
SUNO_ANSWERS = FIXTURES / "suno" / "poll"
PENDING_TASK = "5e72a1b0c4d3e2f1a0b9c8d7e6f597c7"


def test_every_poll_endpoint_fits_the_delivery_column() -> None:
    width = Delivery.__table__.c.endpoint.type.length
    assert all(len(poll_endpoint(provider)) <= width for provider in Provider)


async def test_a_poll_answer_and_the_signed_callback_of_its_task_merge(
    backend: Backend, engine: Engine
) -> None:
    answer = (SUNO_ANSWERS / "record_info_pending.json").read_bytes()
    # Kept headers are lower-case, as the web process keeps them.
    signed = {
        name.lower(): value
        for name, value in suno_signed(SUNO_KEY, PENDING_TASK, int(time.time())).items()
    }
    async with running(backend.settings(suno_hmac_key=SUNO_KEY)) as runtime:
        asked = await runtime.writer.write(polled(answer, Provider.SUNO))
        called = await runtime.writer.write(detected(suno_json(PENDING_TASK), headers=signed))

    assert [receipt.outcome for receipt in (asked, called)] == [Outcome.ACCEPTED] * 2
    with Session(engine) as session:
        job = session.scalars(select(models.Job)).one()
        endpoints = session.scalars(select(Delivery.endpoint).order_by(Delivery.id)).all()
    assert (job.job_id, job.state, job.provider_state, job.deliveries) == (
        PENDING_TASK,
        "succeeded",
        "200",
        2,
    )
    # The callback carries no times: the answer's creation time stays.
    assert job.created_at == datetime(2025, 7, 29, 9, 54, 14, tzinfo=UTC)
    assert endpoints == ["poll/suno", "auto"]


async def test_a_stored_poll_answer_is_replayed_as_a_poll_answer(
    backend: Backend, engine: Engine
) -> None:
    answers = [
        (SUNO_ANSWERS / name).read_bytes()
        for name in ("record_info_separate_vocal.json", "record_info_wrong_key.json")
    ]
    async with running(backend.settings()) as runtime:
        accepted, rejected = [await runtime.writer.write(polled(a, Provider.SUNO)) for a in answers]
    async for client in open_client(backend.settings(suno_hmac_key=SUNO_KEY)):
        again = await client.post(f"/v1/deliveries/{accepted.delivery_id}/replay", headers=AUTH)
        refused = await client.post(f"/v1/deliveries/{rejected.delivery_id}/replay", headers=AUTH)

    assert (accepted.outcome, rejected.outcome) == (Outcome.ACCEPTED, Outcome.REJECTED)
    assert again.status_code == 200, again.text
    replay = again.json()
    assert (replay["outcome"], replay["replay_of"]) == ("duplicate", accepted.delivery_id)
    assert [job["job_id"] for job in replay["jobs"]] == ["3e63b4cc88d52611159371f6af5571e7"]
    # Parsed again as the provider's answer, not as a callback it is not.
    assert refused.json()["error"] == rejected.error
    assert rejected.error is not None and rejected.error.startswith("record-info answered code 401")
    with Session(engine) as session:
        stored = session.get_one(Delivery, replay["delivery_id"])
        assert (stored.endpoint, stored.provider) == ("poll/suno", "suno")

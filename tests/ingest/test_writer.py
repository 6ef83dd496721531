"""The writer on the real databases, fed intakes directly (arrival times chosen by the test)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from app import models
from app.config import Settings
from app.db import create_sync_engine
from app.ingest.intake import Arrival, Intake, Outcome
from app.ingest.writer import Writer
from app.providers.registry import parse_callback
from tests.api.payloads import ci_json

pytestmark = pytest.mark.anyio
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
async def writer(settings: Settings) -> AsyncIterator[Writer]:
    engine = create_sync_engine(settings)
    writer = Writer(engine, max_batch=16, timeout_s=settings.write_timeout_s)
    writer.start()
    yield writer
    await writer.stop()
    engine.dispose()


def intake(body: bytes, received_at: datetime) -> Intake:
    parsed = parse_callback(body)
    arrival = Arrival(
        received_at=received_at,
        endpoint="auto",
        content_type=None,
        client_addr=None,
        headers={},
        body=body,
    )
    return Intake(arrival=arrival, provider=parsed.provider, jobs=parsed.jobs)


async def test_first_and_last_received_are_the_earliest_and_latest_arrival(
    writer: Writer, settings: Settings
) -> None:
    # A slow upload commits after a faster, later one.
    late_arrival = await writer.write(intake(ci_json("j-rx", "Running"), T0 + timedelta(seconds=2)))
    early_arrival = await writer.write(intake(ci_json("j-rx", "Running"), T0))

    assert (late_arrival.outcome, early_arrival.outcome) == (Outcome.ACCEPTED, Outcome.DUPLICATE)
    engine = create_sync_engine(settings)
    with engine.connect() as connection:
        first, last = connection.execute(
            select(models.Job.first_received_at, models.Job.last_received_at)
        ).one()
    engine.dispose()
    assert (first, last) == (T0, T0 + timedelta(seconds=2))


async def test_a_stopped_writer_has_written_everything_queued(settings: Settings) -> None:
    engine = create_sync_engine(settings)
    writer = Writer(engine, max_batch=4, timeout_s=settings.write_timeout_s)
    writer.start()
    pending = [writer.write(intake(ci_json(f"j-q{n}", "Success"), T0)) for n in range(10)]
    receipts = await asyncio.gather(*pending)
    await writer.stop()
    assert not writer.alive
    assert len({receipt.delivery_id for receipt in receipts}) == 10
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM job")) == 10
    engine.dispose()

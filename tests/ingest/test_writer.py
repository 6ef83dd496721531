"""The writer (and its process) on the real databases, fed submissions directly (arrival times
chosen by the test)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from app import models
from app.config import Settings
from app.db import create_sync_engine
from app.errors import Overloaded, StorageUnavailable
from app.ingest.in_flight import WritesInFlight
from app.ingest.intake import Outcome, Receipt, Submission
from app.ingest.turns import writer_turns
from app.ingest.writer import Writer
from tests.api.payloads import ci_json
from tests.ingest.submissions import detected

pytestmark = pytest.mark.anyio
T0 = datetime(2026, 1, 1, tzinfo=UTC)
STORED = {Outcome.ACCEPTED, Outcome.DUPLICATE}


@pytest.fixture
async def writer(settings: Settings) -> AsyncIterator[Writer]:
    writer = Writer(settings)
    await writer.start()
    yield writer
    await writer.stop()


def intake(body: bytes, received_at: datetime) -> Submission:
    return detected(body, received_at=received_at)


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
    writer = Writer(settings.model_copy(update={"write_batch_max": 4}))
    await writer.start()
    pending = [writer.write(intake(ci_json(f"j-q{n}", "Success"), T0)) for n in range(10)]
    receipts = await asyncio.gather(*pending)
    await writer.stop()
    assert not writer.alive
    assert len({receipt.delivery_id for receipt in receipts}) == 10
    engine = create_sync_engine(settings)
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM job")) == 10
    engine.dispose()


async def test_a_dead_writer_process_is_replaced_and_nothing_answered_is_lost(
    writer: Writer, settings: Settings
) -> None:
    first = writer.process_id
    assert first is not None
    pending = [
        asyncio.create_task(writer.write(intake(ci_json(f"j-kill{n}", "Success"), T0)))
        for n in range(200)
    ]
    # Killed once it has committed some: the rest are being written or still waiting.
    committed, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
    os.kill(first, signal.SIGKILL)
    answers = await asyncio.wait_for(asyncio.gather(*pending, return_exceptions=True), 60)

    assert all(isinstance(task.result(), Receipt) for task in committed)
    assert all(isinstance(answer, Receipt | StorageUnavailable) for answer in answers)
    await until(lambda: not writer.alive, within_s=60)
    # Replaced by itself, with no submission needed to notice (readiness probes see it).
    await until(lambda: writer.alive, within_s=60)
    assert writer.process_id != first
    after = await written(writer, intake(ci_json("j-after", "Success"), T0))
    assert after.outcome in STORED
    acknowledged = {answer.jobs[0].job_id for answer in answers if isinstance(answer, Receipt)}
    engine = create_sync_engine(settings)
    with engine.connect() as connection:
        stored = set(connection.scalars(select(models.Job.job_id)))
    engine.dispose()
    assert acknowledged | {"j-after"} <= stored


async def test_submissions_are_answered_503_at_once_while_no_writer_process_runs(
    settings: Settings,
) -> None:
    # "At once" is before the write timeout, set to the most allowed: half of it is plenty.
    patient = settings.model_copy(update={"write_timeout_s": 10})
    writer = Writer(patient)
    await writer.start()
    try:
        first = writer.process_id
        assert first is not None
        os.kill(first, signal.SIGKILL)
        await until(lambda: not writer.alive, within_s=60)

        with pytest.raises(StorageUnavailable):
            submitted = writer.write(intake(ci_json("j-soon", "Success"), T0))
            await asyncio.wait_for(submitted, patient.write_timeout_s / 2)
    finally:
        await writer.stop()


async def written(writer: Writer, submission: Submission) -> Receipt:
    """The submission stored, sent again after each 503 as a provider would: a new writer
    process may take longer than a short write timeout over its first commit on a loaded
    machine. Stored by an attempt answered 503 (the batch had begun), it is a duplicate."""
    async with asyncio.timeout(60):
        while True:
            with contextlib.suppress(StorageUnavailable):
                return await writer.write(submission)
            await asyncio.sleep(0.1)  # a 503 while no writer process runs comes at once


async def until(condition: Callable[[], bool], *, within_s: float) -> None:
    async with asyncio.timeout(within_s):
        while not condition():
            await asyncio.sleep(0.01)


async def test_a_writer_process_that_stops_answering_is_replaced(settings: Settings) -> None:
    writer = Writer(settings.model_copy(update={"write_timeout_s": 0.5}))
    await writer.start()
    try:
        stuck = writer.process_id
        assert stuck is not None
        os.kill(stuck, signal.SIGSTOP)  # alive, holding its socket, answering nothing

        with pytest.raises(StorageUnavailable):
            await writer.write(intake(ci_json("j-stuck", "Success"), T0))
        # Unanswered 2 x timeout + 2 s past its deadline: killed and replaced.
        await until(lambda: writer.alive and writer.process_id != stuck, within_s=60)
        after = await written(writer, intake(ci_json("j-unstuck", "Success"), T0))
    finally:
        await writer.stop()

    assert after.outcome in STORED


@pytest.mark.sqlite_only  # PostgreSQL writers take turns on an advisory lock in the transaction
async def test_a_writer_whose_turn_does_not_come_answers_503_and_carries_on(
    settings: Settings,
) -> None:
    quick = settings.model_copy(update={"write_timeout_s": 0.5})
    writer = Writer(quick)
    await writer.start()
    engine = create_sync_engine(quick)
    other_worker = writer_turns(engine)
    engine.dispose()  # it was asked for the path only; Python 3.13 warns of unclosed connections
    try:
        before = writer.process_id
        with other_worker.taken(until=time.monotonic() + 60):
            with pytest.raises(StorageUnavailable):
                await writer.write(intake(ci_json("j-no-turn", "Success"), T0))
            # So that the writer process gives up waiting meanwhile (at its 0.5 s deadline); were
            # it later, it would take the turn once released, and this test would still pass.
            await asyncio.sleep(1)
        after = await written(writer, intake(ci_json("j-turn", "Success"), T0))
        assert writer.process_id == before
        assert after.outcome in STORED
    finally:
        other_worker.close()
        await writer.stop()


async def test_past_the_pending_bound_a_submission_is_refused_at_once_and_the_rest_commit(
    settings: Settings,
) -> None:
    """Submitted together, before the writer process can answer any: the first two are handed
    over, the third is refused without being kept; once they are answered there is room again."""
    writer = Writer(settings.model_copy(update={"max_pending_writes": 2}))
    await writer.start()
    try:
        first = [writer.write(intake(ci_json(f"j-p{n}", "Success"), T0)) for n in range(3)]
        answers = await asyncio.gather(*first, return_exceptions=True)
        later = await writer.write(intake(ci_json("j-p3", "Success"), T0))
    finally:
        await writer.stop()

    assert [type(answer) for answer in answers] == [Receipt, Receipt, Overloaded]
    assert later.outcome is Outcome.ACCEPTED
    engine = create_sync_engine(settings)
    with engine.connect() as connection:
        stored = connection.execute(text("SELECT job_id FROM job ORDER BY job_id")).scalars()
        assert stored.all() == ["j-p0", "j-p1", "j-p3"]
    engine.dispose()


async def test_the_pending_bytes_count_the_kept_headers_with_the_body(settings: Settings) -> None:
    """A small body with large kept headers holds as much as a large body: two such, submitted
    together, exceed a bound either body alone is far below."""
    writer = Writer(settings.model_copy(update={"max_pending_write_bytes": 40_000}))
    large_header = {"user-agent": "u" * 30_000}
    await writer.start()
    try:
        together = [
            writer.write(detected(ci_json(f"j-h{n}", "Success"), headers=large_header))
            for n in range(2)
        ]
        answers = await asyncio.gather(*together, return_exceptions=True)
    finally:
        await writer.stop()

    assert [type(answer) for answer in answers] == [Receipt, Overloaded]


async def test_a_write_counts_as_in_flight_from_its_submission_until_its_answer(
    settings: Settings,
) -> None:
    """What the background process waits on (app/ingest/in_flight.py): held by a writer process
    that answers nothing, a write is counted; answered (committed, or 503 past its deadline on a
    starved machine), it is not, and neither is one refused."""
    in_flight = WritesInFlight.shared()
    update = {"max_pending_writes": 1, "write_timeout_s": 10}
    writer = Writer(settings.model_copy(update=update), in_flight)
    await writer.start()
    try:
        held = writer.process_id
        assert held is not None
        os.kill(held, signal.SIGSTOP)
        try:
            pending = asyncio.create_task(writer.write(intake(ci_json("j-held", "Success"), T0)))
            await until(lambda: in_flight.count == 1, within_s=60)
            with pytest.raises(Overloaded):
                await writer.write(intake(ci_json("j-refused", "Success"), T0))
            assert in_flight.count == 1
        finally:
            os.kill(held, signal.SIGCONT)
        answered = await asyncio.gather(pending, return_exceptions=True)
    finally:
        await writer.stop()

    assert isinstance(answered[0], Receipt | StorageUnavailable)
    assert in_flight.count == 0

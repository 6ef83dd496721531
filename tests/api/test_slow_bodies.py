"""Body reads past their deadline end in a 408; nothing else is cancelled.

On a virtual clock (tests/virtual_time.py): the deadlines and sweeps are exact, not at the
mercy of the machine's load.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import pytest

from app.api.slow_bodies import SWEEP_EVERY_S, SlowBodies
from app.errors import RequestTimeout
from tests.virtual_time import VirtualTimeLoop

pytestmark = pytest.mark.anyio
TIMEOUT_S = 0.2


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, object]]:
    return "asyncio", {"loop_factory": VirtualTimeLoop}


def now() -> float:
    return asyncio.get_running_loop().time()


async def guarded(waiting: Coroutine[Any, Any, Any]) -> None:
    """Waits, but not forever: a read that is never cut fails its test instead of hanging."""
    async with asyncio.timeout(5):
        await waiting


async def test_a_body_that_stops_arriving_is_cut_with_a_408_within_a_sweep_of_its_deadline() -> (
    None
):
    slow_bodies = SlowBodies(TIMEOUT_S)
    never = asyncio.Event()
    started = now()

    with pytest.raises(RequestTimeout, match="within 0.2 s"), slow_bodies.deadline():
        await guarded(never.wait())

    assert TIMEOUT_S <= now() - started <= TIMEOUT_S + SWEEP_EVERY_S
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_only_the_late_reads_are_cut_and_a_finished_one_is_left_alone() -> None:
    slow_bodies = SlowBodies(TIMEOUT_S)
    late_started = asyncio.Event()

    async def read_late() -> str:
        with slow_bodies.deadline():
            late_started.set()
            await guarded(asyncio.Event().wait())
        return "read"

    async def read_in_time_then_work_on() -> str:
        await late_started.wait()
        await asyncio.sleep(TIMEOUT_S / 2)  # registered after the late read: a later deadline
        with slow_bodies.deadline():
            await asyncio.sleep(0)
        await asyncio.sleep(2 * TIMEOUT_S + SWEEP_EVERY_S)  # well past its own deadline
        return "worked on"

    late, in_time = await asyncio.gather(
        read_late(), read_in_time_then_work_on(), return_exceptions=True
    )

    assert isinstance(late, RequestTimeout)
    assert in_time == "worked on"


async def test_a_cancellation_from_elsewhere_propagates_and_is_not_a_408() -> None:
    slow_bodies = SlowBodies(TIMEOUT_S)
    reading = asyncio.Event()

    async def read() -> None:
        with slow_bodies.deadline():
            reading.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(read())
    await reading.wait()
    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task
    # What the shutdown cancelled is not cut again when its deadline passes.
    await asyncio.sleep(TIMEOUT_S + 2 * SWEEP_EVERY_S)
    assert task.cancelled()


async def test_the_sweeps_start_again_after_an_idle_spell() -> None:
    slow_bodies = SlowBodies(TIMEOUT_S)
    with slow_bodies.deadline():
        await asyncio.sleep(0)
    await asyncio.sleep(2 * SWEEP_EVERY_S)  # nothing in flight: the sweeps have stopped

    with pytest.raises(RequestTimeout), slow_bodies.deadline():
        await guarded(asyncio.Event().wait())

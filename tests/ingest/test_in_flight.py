"""The writes a web worker awaits, as its background process sees them (app/ingest/in_flight.py),
and how background work waits for a moment without any."""

from __future__ import annotations

import contextlib
import threading
import time
from multiprocessing.connection import Connection

import pytest

from app.ingest.in_flight import PATIENCE_S, WritesInFlight
from app.processes import processes


def test_each_awaited_write_counts_until_its_block_ends_however_it_ends() -> None:
    in_flight = WritesInFlight()
    with in_flight.one():
        with pytest.raises(RuntimeError), in_flight.one():
            assert in_flight.count == 2
            raise RuntimeError("a write that failed")
        assert in_flight.count == 1
    assert in_flight.count == 0


def test_with_no_write_awaited_background_work_goes_at_once() -> None:
    pauses: list[float] = []
    WritesInFlight().wait_for_none(threading.Event(), sleep=pauses.append)
    assert pauses == []


def test_background_work_looks_again_after_pauses_that_double_and_goes_once_writes_end() -> None:
    in_flight = WritesInFlight()
    pauses: list[float] = []
    writing = in_flight.one()
    writing.__enter__()

    def pause(seconds: float) -> bool:
        pauses.append(seconds)
        if len(pauses) == 7:
            writing.__exit__(None, None, None)
        return False

    in_flight.wait_for_none(threading.Event(), sleep=pause)

    assert pauses == pytest.approx([0.0005, 0.001, 0.002, 0.004, 0.008, 0.01, 0.01])


def test_under_writes_that_never_end_background_work_goes_after_its_patience() -> None:
    in_flight = WritesInFlight()
    pauses: list[float] = []
    stop = threading.Event()

    def pause(seconds: float) -> bool:
        pauses.append(seconds)
        return stop.wait(seconds)

    with in_flight.one():
        started = time.monotonic()
        in_flight.wait_for_none(stop, sleep=pause)
        waited_s = time.monotonic() - started
        assert in_flight.count == 1
    assert waited_s >= PATIENCE_S  # not before (a loaded machine may take longer)
    assert max(pauses) == 0.01


def test_a_stopping_worker_does_not_wait() -> None:
    in_flight = WritesInFlight()
    stop = threading.Event()
    stop.set()
    pauses: list[float] = []
    with in_flight.one():
        in_flight.wait_for_none(stop, sleep=pauses.append)
    assert pauses == []


def _report_count(in_flight: WritesInFlight, pipe: Connection) -> None:
    while pipe.recv():
        pipe.send(in_flight.count)


def test_a_process_started_with_the_shared_count_sees_it_change() -> None:
    in_flight = WritesInFlight.shared()
    # The context stemhook's processes come from: a fork server started here with another's
    # preloads would serve every later writer of this test run.
    ours, theirs = processes().Pipe()
    child = processes().Process(target=_report_count, args=(in_flight, theirs))
    child.start()
    try:
        seen = []
        for writes in (0, 1, 2, 0):
            with contextlib.ExitStack() as awaited:
                for _ in range(writes):
                    awaited.enter_context(in_flight.one())
                ours.send(True)
                seen.append(ours.recv())
        ours.send(False)
    finally:
        child.join(30)
    assert seen == [0, 1, 2, 0]
    assert child.exitcode == 0

"""The writer process: how it takes its batches off the socket (no database needed)."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest

from app.ingest import writer_process
from app.ingest.frames import frame
from app.ingest.intake import Submission
from tests.ingest.submissions import detected

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@contextmanager
def inbox_with(
    count: int, *, max_batch: int, closed: bool, deadline: Callable[[int], float] = lambda _: 0.0
) -> Iterator[writer_process._Inbox]:
    """An inbox whose web process has sent `count` submissions (and closed its end, or not)."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        body = b"".join(frame((n, deadline(n), submission(n).to_wire())) for n in range(count))
        ours.sendall(body)
        if closed:
            ours.shutdown(socket.SHUT_WR)
        yield writer_process._Inbox(theirs, max_batch=max_batch)


def submission(number: int) -> Submission:
    body = b'{"n": %d}' % number
    return detected(body, received_at=T0)


def sequences(batch: list[tuple[int, float, Submission]]) -> list[int]:
    return [sequence for sequence, _, _ in batch]


def test_a_batch_is_half_of_what_waits_in_order() -> None:
    with inbox_with(10, max_batch=256, closed=False) as inbox:
        batches = [sequences(inbox.take()) for _ in range(4)]

    assert batches == [[0, 1, 2, 3, 4], [5, 6, 7], [8], [9]]


def test_a_writer_that_waited_for_its_turn_takes_everything_waiting() -> None:
    """What arrived while another worker's writer committed has waited long enough."""
    with inbox_with(10, max_batch=8, closed=False) as inbox:
        batches = [sequences(inbox.take(everything=True)) for _ in range(2)]

    assert batches == [list(range(8)), [8, 9]]


def test_when_a_turn_is_missed_the_requests_no_longer_awaited_are_taken_oldest_first() -> None:
    with inbox_with(6, max_batch=8, closed=False, deadline=lambda n: 10.0 * n) as inbox:
        assert inbox.wait()
        assert inbox.oldest_deadline() == 0.0
        expired = sequences(inbox.take_expired(20.0))
        assert (expired, inbox.oldest_deadline()) == ([0, 1, 2], 30.0)


def test_a_backlog_still_commits_full_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two batches are read ahead, so half of them is a whole one (reads smaller than a
    submission, so that reading stops where the inbox decides, not where a read ends)."""
    monkeypatch.setattr(writer_process, "_READ_BYTES", 64)
    with inbox_with(40, max_batch=8, closed=False) as inbox:
        sizes = [len(inbox.take()) for _ in range(4)]

    assert sizes == [8, 8, 8, 8]


def test_once_the_web_process_has_closed_its_end_the_rest_goes_at_once() -> None:
    with inbox_with(10, max_batch=4, closed=True) as inbox:
        batches = []
        while batch := inbox.take():
            batches.append(sequences(batch))

    assert batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]

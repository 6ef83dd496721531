"""How the writer process takes its batches off the socket (no database needed)."""

from __future__ import annotations

import socket
from datetime import UTC, datetime

from app.ingest.frames import frame
from app.ingest.intake import Arrival, Submission
from app.ingest.writer_process import _Inbox

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def submission(number: int) -> Submission:
    body = b'{"n": %d}' % number
    return Submission(Arrival(T0, "auto", None, None, {}, body), expected=None)


def test_a_batch_is_half_of_what_waits_and_nothing_is_skipped() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        inbox = _Inbox(theirs, max_batch=256)
        ours.sendall(b"".join(frame((n, 0.0, submission(n))) for n in range(10)))
        ours.shutdown(socket.SHUT_WR)

        batches = []
        while batch := inbox.take():
            batches.append([sequence for sequence, _, _ in batch])

    assert [len(batch) for batch in batches] == [5, 3, 1, 1]
    assert [n for batch in batches for n in batch] == list(range(10))


def test_a_batch_is_never_more_than_the_maximum() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        inbox = _Inbox(theirs, max_batch=2)
        ours.sendall(b"".join(frame((n, 0.0, submission(n))) for n in range(10)))

        assert len(inbox.take()) == 2

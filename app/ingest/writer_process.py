"""The writer process: takes submissions off its socket, commits them in groups, answers each.

Started by the web process (app/ingest/writer.py) with one end of a socket pair. Parsing and
storing run here, on an interpreter lock of their own: in the web process they competed with
the HTTP work for one lock, and the two ran one after the other instead of side by side
(bench/ingest, BENCHMARKS.md).

A submission whose sender has stopped waiting (its deadline passed: it was answered 503) is
dropped before its batch begins, and answered as unavailable all the same: every submission gets
exactly one answer, which is how the web process tells a slow writer process from a stuck one.
The process stops when the web process closes its end (what arrived before is committed and
answered first), or when it is terminated.
"""

from __future__ import annotations

import gc
import logging.config
import signal
import socket
import time
from collections import deque
from collections.abc import Iterator

from app.config import Settings
from app.db import create_sync_engine
from app.errors import StorageUnavailable
from app.ingest.committer import UNAVAILABLE, Answer, Committer, answer_to_wire, committer_for
from app.ingest.frames import Unframer, frame
from app.ingest.intake import Submission
from app.ingest.turns import Turn
from app.logs import json_lines, log_config

# (sequence number, monotonic deadline, submission): CLOCK_MONOTONIC is one clock for every
# process on the machine.
Request = tuple[int, float, Submission]

# One transaction holds its bodies in memory until it commits.
MAX_BATCH_BYTES = 32 * 1024 * 1024
_READ_BYTES = 256 * 1024


def serve(channel: socket.socket, settings: Settings) -> None:
    # Ctrl-C reaches the whole process group: the web process decides when this one stops (it
    # closes the socket once its requests are answered). SIGTERM still ends it at once: what
    # it was writing is not acknowledged, and the senders retry.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.config.dictConfig(log_config(json=json_lines(), level=settings.log_level))
    # What this process inherited from the fork server lives as long as it: frozen at once
    # (a splice of the collector's lists), it is never walked, not even by the collection
    # below, which walked it in ~130 ms, each writer start waiting.
    gc.freeze()
    engine = create_sync_engine(settings)
    committer = committer_for(engine, settings)
    inbox = _Inbox(channel, max_batch=settings.write_batch_max)
    # What start-up built (the code, SQLAlchemy's compiled statements) lives as long as the
    # process: kept out of the collector's full passes, which otherwise walked its ~85,000
    # objects in 50-75 ms, a few times a minute under load, with every submission waiting
    # (half-rate p99, bench/ingest). The web process does the same (app/runtime.py).
    gc.collect()
    gc.freeze()
    try:
        while inbox.wait():
            with committer.turn(until=inbox.oldest_deadline()) as turn:
                _send(channel, _unavailable(inbox.take_expired(time.monotonic())))
                if turn is not Turn.MISSED:  # missed: another worker's writer kept the database
                    batch = inbox.take(everything=turn is Turn.WAITED)
                    for answers in _stored(committer, batch):
                        _send(channel, answers)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the web process is gone: nobody is waiting for these answers
    finally:
        committer.close()
        engine.dispose()
        channel.close()


def _stored(committer: Committer, batch: list[Request]) -> Iterator[list[tuple[int, Answer]]]:
    """The batch's answers by sequence, group by group as the committer decides them."""
    if not batch:
        return
    groups = committer.commit(
        [submission for _, _, submission in batch], deadlines=[deadline for _, deadline, _ in batch]
    )
    for group in groups:
        yield [(batch[index][0], answer) for index, answer in group]


def _send(channel: socket.socket, answers: list[tuple[int, Answer]]) -> None:
    if answers:
        channel.sendall(frame([(sequence, answer_to_wire(answer)) for sequence, answer in answers]))


def _unavailable(requests: list[Request]) -> list[tuple[int, Answer]]:
    return [(sequence, StorageUnavailable(UNAVAILABLE)) for sequence, _, _ in requests]


class _Inbox:
    def __init__(self, channel: socket.socket, *, max_batch: int) -> None:
        self._channel = channel
        self._max_batch = max_batch
        self._unframer = Unframer()
        self._waiting: deque[Request] = deque()
        self._closed = False

    def wait(self) -> bool:
        """Blocks until a request waits; False once the web process has closed its end and
        everything it sent has been taken."""
        while not self._waiting and not self._closed:
            self._receive(0)
        return bool(self._waiting)

    def oldest_deadline(self) -> float:
        return self._waiting[0][1]

    def take_expired(self, now: float) -> list[Request]:
        """The requests whose senders have stopped waiting (the oldest come first)."""
        expired = []
        while self._waiting and self._waiting[0][1] <= now:
            expired.append(self._waiting.popleft())
        return expired

    def take(self, *, everything: bool = False) -> list[Request]:
        """Half of the requests waiting (at least one if any, at most a batch); does not block.
        Once the web process has closed its end, what is left goes in full batches.

        Not all of them: the web process would then have nothing to do until they were committed,
        and this process nothing while the web process answered them and read the next requests;
        the two took turns, each busy 0.6 of the time under load. With half, the first half's
        answers go out while the second half is committed (Media Lab ingest x1.08-1.32, five
        paired runs). Up to two batches are read ahead, so that a backlog still commits full ones.
        `everything`: after waiting for its turn behind another worker's writer (what waits has
        waited long enough, and the other worker's processes keep the cores busy meanwhile):
        2 workers on SQLite, Media Lab, ~2,400 against ~2,100 req/s and p99 42 against 91 ms.
        """
        self._receive_available()
        waiting = len(self._waiting)
        limit = min(self._max_batch, waiting if everything or self._closed else (waiting + 1) // 2)
        batch: list[Request] = []
        size = 0
        while self._waiting and len(batch) < limit and size < MAX_BATCH_BYTES:
            request = self._waiting.popleft()
            batch.append(request)
            size += len(request[2].arrival.body)
        return batch

    def _receive_available(self) -> None:
        try:
            while not self._closed and len(self._waiting) < 2 * self._max_batch:
                self._receive(socket.MSG_DONTWAIT)
        except BlockingIOError:
            pass

    def _receive(self, flags: int) -> None:
        try:
            data = self._channel.recv(_READ_BYTES, flags)
        except ConnectionResetError:
            data = b""
        if not data:
            self._closed = True
            return
        self._waiting.extend(
            (sequence, deadline, Submission.from_wire(submission))
            for sequence, deadline, submission in self._unframer.feed(data)
        )

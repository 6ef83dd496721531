"""The SQLite write lock between workers' writer processes: a file lock, taken in turns.

Each web worker has a writer process of its own; on SQLite they all write to one file. Left to
SQLite, a writer that finds the write lock taken is put to sleep by the busy handler for up to
100 ms at a time, whenever the lock was freed meanwhile, which under load with two workers made
the slowest answers (docs/decisions/0001-group-commit-in-a-writer-process.md). Here a writer
waits for its turn on a lock file next to the database instead, trying again every fraction of
a millisecond, and only as long as its oldest request is still awaited. The kernel drops the
lock of a writer that dies, so a crash cannot leave it taken.

PostgreSQL writers take no turns: they commit in parallel, each batch locking only its own jobs
(app/ingest/statements.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from enum import Enum
from typing import Protocol

from sqlalchemy import Connection, Engine, text

_RETRY_S = 0.0002
# Background work waits its turn patiently: it tries again after a pause that doubles up to
# this, leaving the moments between ingest writers' turns to them, and costs next to no CPU
# while it waits (tried every _RETRY_S, a waiting worker's wake-ups took CPU from the writers
# it waited for)...
_PATIENT_RETRY_MAX_S = 0.01
# ...for this long; then it tries as often as a writer, so that writers that never pause (a
# saturating load) cannot starve it.
_PATIENCE_S = 1.0


class Turn(Enum):
    FREE = "free"  # taken at once
    WAITED = "waited"  # taken after another writer's
    MISSED = "missed"  # not taken: the deadline passed first


class Turns(Protocol):
    def taken(
        self, *, until: float, patient: bool = False
    ) -> contextlib.AbstractContextManager[Turn]:
        """The turn, waited for until `until` (time.monotonic()) at most; `patient`: by
        background work, which yields to writers."""

    def close(self) -> None: ...


class _Untaken:
    """No turns: PostgreSQL (writers in parallel) or an in-memory database (one connection)."""

    def taken(
        self, *, until: float, patient: bool = False
    ) -> contextlib.AbstractContextManager[Turn]:
        return contextlib.nullcontext(Turn.FREE)

    def close(self) -> None:
        pass


class _LockFile:
    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)

    @contextlib.contextmanager
    def taken(self, *, until: float, patient: bool = False) -> Iterator[Turn]:
        turn, pause_s = Turn.FREE, _RETRY_S
        impatient_at = time.monotonic() + _PATIENCE_S if patient else 0.0
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                now = time.monotonic()
                if now >= until:
                    yield Turn.MISSED
                    return
                turn = Turn.WAITED
                if now >= impatient_at:
                    pause_s = _RETRY_S
                time.sleep(pause_s)
                pause_s = min(2 * pause_s, _PATIENT_RETRY_MAX_S)
        try:
            yield turn
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self._fd)


def writer_turns(engine: Engine) -> Turns:
    if engine.dialect.name != "sqlite":
        return _Untaken()
    # SQLite's own answer, whatever form the URL took (relative, file: URI, in memory: "").
    with engine.connect() as connection:
        path = connection.execute(text("PRAGMA database_list")).one()[2]
    return _LockFile(f"{path}-writer.lock") if path else _Untaken()


@contextlib.contextmanager
def turn_transaction(engine: Engine, turns: Turns, *, wait_s: float) -> Iterator[Connection]:
    """A write transaction of a background task in the writers' turn, waited for `wait_s` at
    most (TimeoutError past it), patiently: an ingest writer then waits for it without the
    busy handler's sleeps, and goes first when both wait."""
    with turns.taken(until=time.monotonic() + wait_s, patient=True) as turn:
        if turn is Turn.MISSED:
            raise TimeoutError("the database stayed busy with writers")
        with engine.begin() as connection:
            yield connection

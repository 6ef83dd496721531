"""Writer processes sharing one SQLite file take turns through a file lock.

Each web worker has a writer process of its own; on SQLite they all write to one file. Left to
SQLite, a writer that finds the write lock taken is put to sleep by the busy handler, 1, 2, 5,
10, 15 … up to 100 ms at a time, whenever the lock was freed meanwhile: with two workers under
load nearly every batch collided, and the slowest answers took 0.2-0.8 s (BENCHMARKS.md). Here
a writer waits for its turn on a lock file next to the database instead, tries again every
fraction of a millisecond, and gives up after the write timeout (503, as SQLite's busy timeout
did). The kernel drops the lock of a writer that dies, so a crash cannot leave it taken.

PostgreSQL writers take turns on an advisory lock inside their transaction (statements.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from typing import Protocol

from sqlalchemy import Engine

from app.errors import StorageUnavailable

_RETRY_S = 0.0002


class Turns(Protocol):
    def taken(self) -> contextlib.AbstractContextManager[bool]: ...

    def close(self) -> None: ...


class _Untaken:
    """No lock: PostgreSQL (advisory lock) or an in-memory database (one connection)."""

    def taken(self) -> contextlib.AbstractContextManager[bool]:
        return contextlib.nullcontext(False)

    def close(self) -> None:
        pass


class _LockFile:
    def __init__(self, path: str, *, timeout_s: float) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self._timeout_s = timeout_s

    @contextlib.contextmanager
    def taken(self) -> Iterator[bool]:
        """Yields whether it had to wait for the turn."""
        deadline = time.monotonic() + self._timeout_s
        waited = False
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                waited = True
                if time.monotonic() > deadline:
                    raise StorageUnavailable(
                        f"another writer held the database for over {self._timeout_s:g} s"
                    ) from None
                time.sleep(_RETRY_S)
        try:
            yield waited
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self._fd)


def writer_turns(engine: Engine, *, timeout_s: float) -> Turns:
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return _Untaken()
    return _LockFile(f"{database}-writer.lock", timeout_s=timeout_s)

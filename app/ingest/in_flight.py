"""The writes a web worker awaits right now, counted in memory its background process shares, so
that background work goes in the moments between them.

Niceness leaves background threads only the CPU that ingest does not use, but not the disk,
nor the moment after each wake-up of a writer: a mirror streaming files at niceness 19 took a
quarter of saturating ingest's rate on SQLite
(docs/decisions/0021-background-work-between-writes.md). So the mirror reads the next piece of
a file, and the mirror and the poller store, claim and settle, only when no write is awaited,
or once they have waited a second: a trickle that keeps a download's connection alive and lets
background work go on under a load that never pauses.

The web process's event loop alone changes the count; the background process only reads it.
"""

from __future__ import annotations

import ctypes
import multiprocessing.sharedctypes
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

# Background work looks again after a pause that doubles up to _LONGEST_PAUSE_S (a waiting
# thread's wake-ups cost CPU the writers would use)...
_FIRST_PAUSE_S = 0.0005
_LONGEST_PAUSE_S = 0.01
# ...for this long at most, then goes on anyway.
PATIENCE_S = 1.0


class WritesInFlight:
    """A count of awaited writes: `shared()` between a web process and the processes it starts,
    or, made plainly, one of this process's own that stays 0 unless something here writes."""

    def __init__(self, count: ctypes.c_int | None = None) -> None:
        self._count = ctypes.c_int(0) if count is None else count

    @classmethod
    def shared(cls) -> WritesInFlight:
        """In shared memory: passed to a process of multiprocessing's when it starts, that
        process sees the count change."""
        value: ctypes.c_int = multiprocessing.sharedctypes.RawValue(ctypes.c_int, 0)
        return cls(value)

    @property
    def count(self) -> int:
        return self._count.value

    @contextmanager
    def one(self) -> Iterator[None]:
        """One write awaited for the block's duration (the event loop's thread only)."""
        self._count.value += 1
        try:
            yield
        finally:
            self._count.value -= 1

    def wait_for_none(
        self, stop: threading.Event, *, sleep: Callable[[float], bool] | None = None
    ) -> None:
        """Returns once no write is awaited, after PATIENCE_S of waiting whatever the count, or
        once `stop` is set. `sleep(seconds)`, stop.wait by default, pauses between looks."""
        pause = stop.wait if sleep is None else sleep
        give_up_at = time.monotonic() + PATIENCE_S
        pause_s = _FIRST_PAUSE_S
        while self._count.value and not stop.is_set() and time.monotonic() < give_up_at:
            pause(pause_s)
            pause_s = min(2 * pause_s, _LONGEST_PAUSE_S)

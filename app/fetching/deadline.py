"""The deadline of one whole fetch (STEMHOOK_FETCH_TIMEOUT_S), from `Fetcher.open` to the last
byte: connecting, every redirect hop, the headers and the body.

The read timeout alone bounds the wait between two reads only, so a server sending a byte just
inside it would hold a worker for as long as it likes. Every socket operation of a fetch waits at
most what remains of its deadline, so a dripped header or TLS handshake is cut off too, not only
a dripped body. httpcore hands a network stream nothing but the per-operation timeout, so the
deadline reaches the guarded streams (app/fetching/connect.py) through a context variable that
`Fetcher.open` sets for the fetch's duration, in the thread that runs it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from app.fetching.errors import Retryable

Clock = Callable[[], float]
# STEMHOOK_FETCH_TIMEOUT_S's default (app/config.py says why).
DEFAULT_FETCH_TIMEOUT_S = 3600.0


@dataclass(slots=True)
class Deadline:
    """`total_s` after the `clock` (a monotonic one) read `started`, not counting the time the
    fetch itself chose to wait (`paused`)."""

    total_s: float
    started: float
    clock: Clock
    paused_s: float = 0.0

    def remaining_s(self) -> float:
        """Seconds left, always more than 0; Retryable once the deadline has passed."""
        remaining = self.started + self.total_s + self.paused_s - self.clock()
        if remaining <= 0:
            raise Retryable(f"the whole fetch took longer than {self.total_s:g} s")
        return remaining

    @contextmanager
    def paused(self) -> Iterator[None]:
        """The block's time is the caller's own wait (the mirror yielding to callbacks between
        two pieces, app/ingest/in_flight.py), not the source's: the deadline moves by it."""
        began = self.clock()
        try:
            yield
        finally:
            self.paused_s += self.clock() - began


_current: ContextVar[Deadline | None] = ContextVar("fetch_deadline", default=None)


@contextmanager
def fetching_within(deadline: Deadline) -> Iterator[None]:
    """Socket operations inside the block wait no longer than `deadline` allows."""
    token = _current.set(deadline)
    try:
        yield
    finally:
        _current.reset(token)


def bounded(timeout: float | None) -> float | None:
    """`timeout`, cut to what remains of the current fetch's deadline; Retryable once passed."""
    deadline = _current.get()
    if deadline is None:
        return timeout
    remaining = deadline.remaining_s()
    return remaining if timeout is None else min(timeout, remaining)


def check() -> None:
    """Retryable if the current fetch's deadline has passed."""
    bounded(None)

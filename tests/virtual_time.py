"""An asyncio event loop on a virtual clock, for code whose timing is the thing under test.

Whenever the loop has nothing ready and would sleep until its next timer, the clock jumps to that
timer instead: `loop.time()`, `asyncio.sleep`, `call_later` and `asyncio.timeout` keep their
order and their arithmetic exactly, whatever the machine's load, and no real time passes. Real
I/O still works (its readiness is polled), but only code that waits on timers and on other tasks
belongs on it: a wait on another process would skip straight to the next timeout.
"""

from __future__ import annotations

import asyncio
import selectors
from typing import Any


class _Clock:
    now = 0.0


class _SkippingSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    def __init__(self, clock: _Clock) -> None:
        super().__init__()
        self._clock = clock

    def select(self, timeout: float | None = None) -> list[tuple[Any, int]]:
        ready: list[tuple[Any, int]] = super().select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:  # no timer at all: only I/O can wake the loop
            return list(super().select(None))
        self._clock.now += timeout
        return ready


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self._clock = _Clock()
        super().__init__(_SkippingSelector(self._clock))

    def time(self) -> float:
        return self._clock.now

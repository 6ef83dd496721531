"""Ends the request body reads that outlive their deadline, for the callback endpoints.

`asyncio.timeout` around each read arms and disarms a timer per request in the web process,
the busier of stemhook's two under load (docs/decisions/0007-the-web-processs-hot-path.md).
Here a read only registers its task, and one timer per process, armed only while reads are in
flight, cancels the reads past their deadline every SWEEP_EVERY_S. The deadline is therefore
kept to within that resolution rather than to the millisecond, which a body timeout of seconds
does not need.

A read cut this way ends in RequestTimeout (408); a cancellation from anywhere else (the server
shutting down) still propagates as one, as with asyncio.timeout: the task's cancel requests are
counted, and only the one made here is taken back.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any

from app.errors import RequestTimeout

SWEEP_EVERY_S = 0.1

_Task = asyncio.Task[Any]


class SlowBodies:
    """The body-read deadlines of one process's callbacks, enforced by one periodic sweep."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        # In registration order, which is deadline order: every read gets the same timeout.
        self._reading: dict[_Task, tuple[float, int]] = {}
        self._cut: set[_Task] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def deadline(self) -> SlowBodies:
        """`with slow_bodies.deadline():` around the current task's body read."""
        return self

    def __enter__(self) -> None:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a body read runs in a task")
        loop = task.get_loop()
        self._reading[task] = (loop.time() + self.timeout_s, task.cancelling())
        if self._sweeper is None or self._loop is not loop:
            self._loop = loop
            self._sweeper = loop.call_later(SWEEP_EVERY_S, self._sweep)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        _, cancelling = self._reading.pop(task)
        if task in self._cut:
            self._cut.discard(task)
            # Cut here: take this cancel request back; any other still pending propagates.
            if task.uncancel() <= cancelling and exc_type is asyncio.CancelledError:
                raise RequestTimeout(
                    f"the body did not arrive within {self.timeout_s:g} s"
                ) from None

    def _sweep(self) -> None:
        assert self._loop is not None
        now = self._loop.time()
        for task, (deadline, _) in self._reading.items():
            if deadline > now:
                break
            if task not in self._cut:
                self._cut.add(task)
                task.cancel()
        self._sweeper = self._loop.call_later(SWEEP_EVERY_S, self._sweep) if self._reading else None

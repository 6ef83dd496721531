"""What the background workers (app/mirror/worker.py, app/polling/worker.py) share about their
tasks running on threads: gathering the ones that ended, and reading their results."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")
K = TypeVar("K")
# After a task ends, how long the worker waits for others to end before it settles them
# together: at most this many of its transactions a second.
GATHER_S = 0.05


def gathered(
    in_flight: dict[Future[T], K], *, stop: threading.Event, poll_s: float
) -> dict[Future[T], K]:
    """The tasks that end within a poll, and those that end just after them, taken out of
    `in_flight`; with none running, a poll's pause (cut short by `stop`)."""
    if not in_flight:
        stop.wait(poll_s)
        return {}
    done, _ = wait(in_flight, timeout=poll_s, return_when=FIRST_COMPLETED)
    if done:
        stop.wait(GATHER_S)
    finished = {future: task for future, task in in_flight.items() if future.done()}
    for future in finished:
        del in_flight[future]
    return finished


def results(finished: dict[Future[T], K], *, broken: Callable[[K], T], what: str) -> list[T]:
    """The results of finished tasks; one whose thread raised (a bug: the task catches what its
    work may raise) becomes `broken(task)`, and the others are kept."""
    outcomes = []
    for future, task in finished.items():
        try:
            outcomes.append(future.result())
        except Exception:
            log.exception("%s: a task broke (%r)", what, task)
            outcomes.append(broken(task))
    return outcomes

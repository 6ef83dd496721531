"""What the background workers (app/mirror/worker.py, app/polling/worker.py) share about their
tasks running on threads: the rounds they go (`go_rounds`), gathering the tasks that ended, and
reading their results."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Generic, TypeVar

from app.ingest.in_flight import WritesInFlight

log = logging.getLogger(__name__)
T = TypeVar("T")
K = TypeVar("K")
E = TypeVar("E")
# After a task ends, how long the worker waits for others to end before it settles them
# together: at most this many of its transactions a second.
GATHER_S = 0.05
# The longest pause after the database failed a worker, however often it did.
MAX_PAUSE_S = 30.0


@dataclass(frozen=True, slots=True)
class Rounds(Generic[K, T, E]):
    """A worker's part in `go_rounds`: `exchange` settles what ended, renews the leases of the
    tasks running and claims more, in one transaction (an empty list of running tasks and
    `claiming` False: settle only, at shutdown); `work` does a task on a thread (no database);
    `ended` turns the finished tasks into what `exchange` settles. `log`: the worker's own,
    which says what failed it."""

    name: str
    log: logging.Logger
    exchange: Callable[[Sequence[E], Sequence[K], bool], Sequence[K]]
    work: Callable[[K], T]
    ended: Callable[[dict[Future[T], K]], list[E]]


def go_rounds(
    rounds: Rounds[K, T, E],
    *,
    threads: int,
    stop: threading.Event,
    poll_s: float,
    writes: WritesInFlight,
    initializer: Callable[[], None] | None = None,
) -> None:
    """Exchange, have the claimed worked on threads, gather what ended, until `stop`; then wait
    for the tasks running (they see `stop` too) and settle them. Each round's writes (what the
    ended tasks store, then the exchange) wait for a moment without `writes`
    (app/ingest/in_flight.py). A database that fails the worker is
    tried again after a pause that doubles up to MAX_PAUSE_S, never given up on; what ended
    meanwhile waits for the next exchange."""
    in_flight: dict[Future[T], K] = {}
    ended: list[E] = []
    pause = 0.0
    with ThreadPoolExecutor(
        threads, thread_name_prefix=rounds.name, initializer=initializer
    ) as pool:
        try:
            while not stop.is_set():
                try:
                    claimed = rounds.exchange(ended, list(in_flight.values()), True)
                    ended, pause = [], 0.0
                except Exception:
                    rounds.log.exception("%s: the database failed the worker", rounds.name)
                    claimed, pause = [], min(max(2 * pause, poll_s), MAX_PAUSE_S)
                    stop.wait(pause)
                for task in claimed:
                    in_flight[pool.submit(rounds.work, task)] = task
                finished = gathered(in_flight, stop=stop, poll_s=poll_s)
                # What the ended tasks write (the poller stores its answers) and the exchange
                # after it go in one moment without the web process's writes.
                writes.wait_for_none(stop)
                ended += rounds.ended(finished)
        finally:
            stop.set()
            wait(in_flight)
            ended += rounds.ended(in_flight)
            if ended:
                try:
                    rounds.exchange(ended, [], False)
                except Exception:
                    rounds.log.exception(
                        "%s: settling at shutdown failed; leases run out", rounds.name
                    )


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

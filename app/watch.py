"""Waking long-polling readers when their job may have changed.

Waiters wait on their own job's key. A delivery this process commits wakes the waiters of the
jobs its receipt names, and only them. Deliveries other processes commit are noticed by one
shared poll of the job rows whose change became final since the last one (`job.last_tx`
between two transaction marks, app/queries/marks.py: an indexed range): one poll per interval
while anyone waits, however many wait, and nothing while nobody does; it too wakes only the
waiters of the jobs it finds. Woken readers look at their job again; a wake-up promises only that
something may have changed.

At most `max_waiters` requests of a process wait at once: each holds a connection and its
wake-ups cost queries, so beyond that a wait is refused (429) rather than slowing every reader
and the callbacks that share the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Iterable, Iterator

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import models
from app.errors import TooManyWaiters
from app.ingest.intake import JobReceipt
from app.providers.model import Provider, State
from app.queries.jobs import find_job
from app.queries.marks import current_mark

log = logging.getLogger(__name__)
JobKey = tuple[str, str]  # (provider, provider's job id)


class JobWatch:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], *, poll_s: float, max_waiters: int
    ) -> None:
        self._sessions = sessions
        self._poll_s = poll_s
        self._max_waiters = max_waiters
        # Waiters of a key hold its current event; a change sets it and drops it, so that the
        # next look arms a fresh one.
        self._changed: dict[JobKey, asyncio.Event] = {}
        self._interested: Counter[JobKey] = Counter()
        self._slots = 0
        self._poller: asyncio.Task[None] | None = None

    @property
    def waiting(self) -> int:
        """Requests holding a waiting slot now."""
        return self._slots

    def start(self) -> None:
        self._poller = asyncio.create_task(self._poll(), name="stemhook-watch")

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller

    def notify(self, jobs: Iterable[JobReceipt]) -> None:
        """Wake the waiters of the jobs a commit touched."""
        self._wake((job.provider, job.job_id) for job in jobs)

    def _wake(self, keys: Iterable[JobKey]) -> None:
        for key in keys:
            changed = self._changed.pop(key, None)
            if changed is not None:
                changed.set()

    @contextlib.contextmanager
    def watching(self, key: JobKey) -> Iterator[Waiter]:
        self._interested[key] += 1
        waiter = Waiter(self, key)
        try:
            yield waiter
        finally:
            self._slots -= waiter.slotted
            self._interested[key] -= 1
            if not self._interested[key]:
                del self._interested[key]
                self._changed.pop(key, None)

    def take_slot(self) -> None:
        if self._slots >= self._max_waiters:
            raise TooManyWaiters(
                f"{self._max_waiters} requests are already waiting (STEMHOOK_MAX_WAITERS);"
                " retry later or without ?wait="
            )
        self._slots += 1

    def arm(self, key: JobKey) -> asyncio.Event:
        return self._changed.setdefault(key, asyncio.Event())

    async def _poll(self) -> None:
        seen: int | None = None
        while True:
            await asyncio.sleep(self._poll_s)
            if not self._interested:
                seen = None
                continue
            try:
                seen = await self._look_for_changes(seen)
            except Exception:
                log.warning("change poll failed", exc_info=True)

    async def _look_for_changes(self, seen: int | None) -> int:
        """Wakes the waiters of the jobs whose last change became final since the mark `seen`
        (app/queries/marks.py); returns the new mark. A change still being written is at or
        above the new mark, so the next poll finds it."""
        job = models.Job
        async with self._sessions() as session:
            mark = await current_mark(session)
            if seen is None:
                # Without a baseline every waiter looks again: a spurious look costs one query,
                # a missed change a whole wait.
                self._wake(list(self._changed))
                return mark
            rows = (
                await session.execute(
                    select(job.provider, job.job_id).where(job.last_tx.between(seen, mark - 1))
                )
            ).all()
        self._wake((provider, job_id) for provider, job_id in rows)
        return mark


class Waiter:
    """One request's interest in one job, and its waiting slot once it has to wait."""

    def __init__(self, watch: JobWatch, key: JobKey) -> None:
        self._watch = watch
        self._key = key
        self.slotted = False

    def armed(self) -> asyncio.Event:
        """The event the job's next change sets. Arm before looking, so that a change landing
        between the look and the wait still wakes the waiter."""
        return self._watch.arm(self._key)

    def hold_slot(self) -> None:
        """Count this request among the waiters from now on; TooManyWaiters if they are full."""
        if not self.slotted:
            self._watch.take_slot()
            self.slotted = True


async def final_or_timeout(
    sessions: async_sessionmaker[AsyncSession],
    watch: JobWatch,
    provider: Provider,
    job_id: str,
    *,
    wait_s: float,
    gone: asyncio.Event,
) -> models.Job | None:
    """The job once it is final, or as it is (None if unknown) when `wait_s` has passed or the
    client went away (`gone`)."""
    deadline = asyncio.get_running_loop().time() + wait_s
    with watch.watching((provider, job_id)) as waiter:
        while True:
            changed = waiter.armed()
            async with sessions() as session:
                job = await find_job(session, provider, job_id)
            remaining = deadline - asyncio.get_running_loop().time()
            if (job is not None and State(job.state).is_final) or remaining <= 0 or gone.is_set():
                return job
            waiter.hold_slot()
            await _first_of(changed, gone, timeout_s=remaining)


async def _first_of(*events: asyncio.Event, timeout_s: float) -> None:
    waits = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()

"""Waking long-polling readers when jobs may have changed.

Deliveries this process commits wake every waiter at once. Deliveries other processes commit
are noticed by one shared poll of the highest delivery id: a single indexed query per interval
while anyone waits, however many wait, and nothing while nobody does. Woken readers look at
their job again; a wake-up promises only that something may have changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import models
from app.providers.model import Provider, State
from app.queries.jobs import find_job

log = logging.getLogger(__name__)


class JobWatch:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, poll_s: float) -> None:
        self._sessions = sessions
        self._poll_s = poll_s
        self._changed = asyncio.Event()
        self._waiting = 0
        self._poller: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._poller = asyncio.create_task(self._poll(), name="stemhook-watch")

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller

    def notify(self) -> None:
        if self._waiting:
            # Waiters hold the old event; new waiters get a fresh one.
            self._changed.set()
            self._changed = asyncio.Event()

    @contextlib.contextmanager
    def armed(self) -> Iterator[asyncio.Event]:
        """The event the next change sets. Arm before looking, so that a change landing between
        the look and the wait still wakes the waiter."""
        self._waiting += 1
        try:
            yield self._changed
        finally:
            self._waiting -= 1

    async def _poll(self) -> None:
        # Without a baseline the first poll wakes everyone: a spurious look costs one query, a
        # missed change a whole wait.
        seen: int | None = None
        while True:
            await asyncio.sleep(self._poll_s)
            if not self._waiting:
                seen = None
                continue
            try:
                async with self._sessions() as session:
                    latest = await session.scalar(select(func.max(models.Delivery.id)))
            except Exception:
                log.warning("change poll failed", exc_info=True)
                continue
            if seen is None or latest != seen:
                self.notify()
            seen = latest


async def final_or_timeout(
    sessions: async_sessionmaker[AsyncSession],
    watch: JobWatch,
    provider: Provider,
    job_id: str,
    *,
    wait_s: float,
) -> models.Job | None:
    """The job once it is final, or as it is (None if unknown) when `wait_s` has passed."""
    deadline = asyncio.get_running_loop().time() + wait_s
    while True:
        with watch.armed() as changed:
            async with sessions() as session:
                job = await find_job(session, provider, job_id)
            remaining = deadline - asyncio.get_running_loop().time()
            if (job is not None and State(job.state).is_final) or remaining <= 0:
                return job
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)

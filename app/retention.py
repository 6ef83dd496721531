"""Retention: dropping old raw delivery bodies, keeping everything else.

The delivery's record (when, from where, outcome, size, headers), the jobs and their event
history stay; only the body goes. A delivery whose body is gone can no longer be replayed (410).

A run costs what it drops: it starts where the last one stopped (purge_state's mark) and walks
the received_at index from there, so the bodies earlier runs dropped are not read again.
One process at a time purges, across replicas: a lease in purge_state, renewed by every batch;
the others skip their turn. Batches are small in rows and in bytes, each its own transaction,
and each is followed by a pause, so that a callback waiting for SQLite's write lock gets it
well within the write timeout. A delivery is stamped when it arrives and committed later, and
replicas' clocks differ a little: each run therefore looks again REVISIT behind the mark, so that
one committed behind it meanwhile is not skipped for ever.

The periodic purge also removes old stored files, when asked (app/file_retention.py), and
sweeps the file store of the temporaries that writers killed mid-write left.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, Row, or_, select, update

from app import models, retention_lease
from app.config import Settings, format_duration
from app.db import create_sync_engine
from app.file_retention import purge_files
from app.storage.store import STALE_TEMPORARIES, FileStore

log = logging.getLogger(__name__)
BATCH_ROWS = 1000
# Freeing a body's pages is most of a batch's work on SQLite: bound it, whatever the sizes.
BATCH_BYTES = 8 * 1024 * 1024
# SQLite's busy handler sleeps at most 100 ms between attempts at the write lock: a gap at
# least this long between batches always lets a waiting callback in.
MIN_PAUSE_S = 0.1
TASK = "delivery_bodies"
# Far above the longest a delivery waits for its commit (the write timeout, 10 s at most) plus
# replicas' clock skew; what it re-reads is a run's constant, not the history's.
REVISIT = timedelta(minutes=2)


def purge_bodies(
    engine: Engine, *, older_than: timedelta, pause: Callable[[float], None] = time.sleep
) -> int | None:
    """Drop the bodies of deliveries received before now - `older_than`; returns how many, or
    None when another process is purging now. `pause` waits between batches."""
    with engine.begin() as connection:
        me = retention_lease.take(connection, TASK)
    if me is None:
        return None
    try:
        return _purge(engine, me, cutoff=datetime.now(UTC) - older_than, pause=pause)
    finally:
        with engine.begin() as connection:
            retention_lease.release(connection, TASK, me)


def _purge(engine: Engine, me: str, *, cutoff: datetime, pause: Callable[[float], None]) -> int:
    purged = 0
    first = True
    while True:
        started = time.monotonic()
        with engine.begin() as connection:
            renewed = retention_lease.renew(connection, TASK, me)
            if renewed is None:
                log.warning("retention: the lease ran out; another process carries on")
                return purged
            mark = (renewed.purged_to, renewed.purged_id)
            if first and mark[0] is not None:
                mark = (mark[0] - REVISIT, 0)
            first = False
            examined = _next_rows(connection, mark=mark, before=cutoff)
            batch = _within_bytes(examined)
            if not batch:
                return purged
            dropped = [row.id for row in batch if row.has_body]
            if dropped:
                delivery = models.Delivery
                connection.execute(
                    update(delivery).where(delivery.id.in_(dropped)).values(body=None)
                )
            last = batch[-1]
            connection.execute(
                update(models.PurgeState)
                .where(models.PurgeState.name == TASK)
                .values(purged_to=last.received_at, purged_id=last.id)
            )
        purged += len(dropped)
        if len(batch) == len(examined) < BATCH_ROWS:
            return purged
        pause(max(MIN_PAUSE_S, time.monotonic() - started))


def _next_rows(
    connection: Connection, *, mark: tuple[datetime | None, int | None], before: datetime
) -> Sequence[Row[int, datetime, int, bool]]:
    """The next deliveries after the mark in (received_at, id) order, by the received_at index:
    at most BATCH_ROWS rows read whatever they hold, so that no statement, not even the first
    after an upgrade over a long emptied history, reads more."""
    delivery = models.Delivery
    query = (
        select(
            delivery.id,
            delivery.received_at,
            delivery.body_size,
            delivery.body.is_not(None).label("has_body"),
        )
        .where(delivery.received_at < before)
        .order_by(delivery.received_at, delivery.id)
        .limit(BATCH_ROWS)
    )
    purged_to, purged_id = mark
    if purged_to is not None:
        query = query.where(
            delivery.received_at >= purged_to,
            or_(delivery.received_at > purged_to, delivery.id > purged_id),
        )
    return connection.execute(query).all()


def _within_bytes(
    rows: Sequence[Row[int, datetime, int, bool]],
) -> Sequence[Row[int, datetime, int, bool]]:
    """The leading rows whose bodies add up to at most BATCH_BYTES, and at least one."""
    total = 0
    for taken, row in enumerate(rows):
        total += row.body_size if row.has_body else 0
        if total > BATCH_BYTES and taken:
            return rows[:taken]
    return rows


class _Stopping(Exception):
    """Raised from the pause between two batches once the process stops."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RetentionPlan:
    """What each run of the periodic purge does, every `every`."""

    every: timedelta
    deliveries_older_than: timedelta | None = None
    files_older_than: timedelta | None = None
    # Swept of the temporaries its dead writers left, and where old files are removed from.
    store: FileStore | None = None


def retention_plan(settings: Settings, store: FileStore) -> RetentionPlan | None:
    """The settings' plan; None when there is nothing to do: no purge is asked for, and no
    mirror writes to the store."""
    files = settings.purge_files_older_than
    uses_store = settings.mirror or files is not None
    if settings.purge_deliveries_older_than is None and not uses_store:
        return None
    return RetentionPlan(
        every=settings.purge_every,
        deliveries_older_than=settings.purge_deliveries_older_than,
        files_older_than=files,
        store=store if uses_store else None,
    )


class PeriodicPurge:
    """Retention for the life of the process, on a thread of its own that owns its engine: the
    engine is disposed by the thread once it has stopped, so no connection is left open to the
    collector however the process stops. A failed task is logged, the run's others still done,
    and it is tried again next time."""

    def __init__(self, settings: Settings, plan: RetentionPlan) -> None:
        self._settings = settings
        self._plan = plan
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stemhook-retention", daemon=True)

    def start(self) -> None:
        self._thread.start()

    async def stop(self, *, timeout_s: float) -> bool:
        """Stops after the current batch, waiting at most `timeout_s`; whether it has stopped.
        One still running is ended with the process: its transaction rolls back, and its lease
        keeps other replicas from purging until it runs out."""
        self._stopping.set()
        if self._thread.ident is not None:  # started
            await asyncio.to_thread(self._thread.join, timeout_s)
        return not self._thread.is_alive()

    def _run(self) -> None:
        engine = create_sync_engine(self._settings)
        try:
            while not self._stopping.is_set():
                try:
                    self.run_once(engine)
                except _Stopping:
                    return
                self._stopping.wait(self._plan.every.total_seconds())
        finally:
            engine.dispose()

    def run_once(self, engine: Engine) -> None:
        """Every task of the plan once, on this thread (the thread's loop, and tests)."""
        plan, store = self._plan, self._plan.store
        if (bodies := plan.deliveries_older_than) is not None:
            self._task(
                lambda: purge_bodies(engine, older_than=bodies, pause=self._pause),
                f"retention: dropped %d bodies older than {bodies}",
            )
        if (files := plan.files_older_than) is not None and store is not None:
            self._task(
                lambda: purge_files(engine, store, older_than=files, pause=self._pause),
                f"retention: removed %d stored files older than {format_duration(files)}",
            )
        if store is not None:
            self._task(
                lambda: store.sweep_temporaries(STALE_TEMPORARIES),
                "retention: swept %d temporaries dead writers left in the file store",
            )

    def _task(self, run: Callable[[], int | None], done: str) -> None:
        try:
            count = run()
        except _Stopping:
            raise
        except Exception:
            log.exception("retention run failed")
        else:
            if count is None:
                log.info("retention: another process is purging; skipped")
            else:
                log.info(done, count)

    def _pause(self, seconds: float) -> None:
        if self._stopping.wait(seconds):
            raise _Stopping

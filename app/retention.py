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
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, Row, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from app import models
from app.config import Settings
from app.db import create_sync_engine

log = logging.getLogger(__name__)
BATCH_ROWS = 1000
# Freeing a body's pages is most of a batch's work on SQLite: bound it, whatever the sizes.
BATCH_BYTES = 8 * 1024 * 1024
# Renewed by every batch; a process that died holding it blocks purging this long at most.
LEASE = timedelta(minutes=5)
# SQLite's busy handler sleeps at most 100 ms between attempts at the write lock: a gap at
# least this long between batches always lets a waiting callback in.
MIN_PAUSE_S = 0.1
TASK = "delivery_bodies"
# Far above the longest a delivery waits for its commit (the write timeout, 10 s at most) plus
# replicas' clock skew; what it re-reads is a run's constant, not the history's.
REVISIT = timedelta(minutes=2)
_INSERT: dict[str, Callable[[type[models.PurgeState]], postgresql.Insert | sqlite.Insert]] = {
    "postgresql": postgresql.insert,
    "sqlite": sqlite.insert,
}


def purge_bodies(
    engine: Engine, *, older_than: timedelta, pause: Callable[[float], None] = time.sleep
) -> int | None:
    """Drop the bodies of deliveries received before now - `older_than`; returns how many, or
    None when another process is purging now. `pause` waits between batches."""
    me = secrets.token_hex(8)
    if not _lease(engine, me):
        return None
    try:
        return _purge(engine, me, cutoff=datetime.now(UTC) - older_than, pause=pause)
    finally:
        _release(engine, me)


def _purge(engine: Engine, me: str, *, cutoff: datetime, pause: Callable[[float], None]) -> int:
    purged = 0
    first = True
    while True:
        started = time.monotonic()
        with engine.begin() as connection:
            renewed = _renew(connection, me)
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


def _lease(engine: Engine, me: str) -> bool:
    now = datetime.now(UTC)
    state = models.PurgeState
    held = {"leased_by": me, "leased_until": now + LEASE}
    statement = (
        _INSERT[engine.dialect.name](state)
        .values(name=TASK, **held)
        .on_conflict_do_update(
            index_elements=[state.name],
            set_=held,
            where=or_(state.leased_until.is_(None), state.leased_until < now),
        )
        .returning(state.name)
    )
    with engine.begin() as connection:
        return connection.execute(statement).first() is not None


def _renew(connection: Connection, me: str) -> Row[datetime | None, int | None] | None:
    """Extends the lease if it is still ours, and answers where the last batch stopped."""
    state = models.PurgeState
    return connection.execute(
        update(state)
        .where(state.name == TASK, state.leased_by == me)
        .values(leased_until=datetime.now(UTC) + LEASE)
        .returning(state.purged_to, state.purged_id)
    ).one_or_none()


def _release(engine: Engine, me: str) -> None:
    state = models.PurgeState
    with engine.begin() as connection:
        connection.execute(
            update(state)
            .where(state.name == TASK, state.leased_by == me)
            .values(leased_by=None, leased_until=None)
        )


class _Stopping(Exception):
    """Raised from the pause between two batches once the process stops."""


class PeriodicPurge:
    """Retention for the life of the process, on a thread of its own that owns its engine: the
    engine is disposed by the thread once it has stopped, so no connection is left open to the
    collector however the process stops. A failed run is logged and tried again next time."""

    def __init__(self, settings: Settings, *, older_than: timedelta, every: timedelta) -> None:
        self._settings = settings
        self._older_than = older_than
        self._every = every
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
                    purged = purge_bodies(engine, older_than=self._older_than, pause=self._pause)
                except _Stopping:
                    return
                except Exception:
                    log.exception("retention run failed")
                else:
                    if purged is None:
                        log.info("retention: another process is purging; skipped")
                    else:
                        log.info(
                            "retention: dropped %d bodies older than %s", purged, self._older_than
                        )
                self._stopping.wait(self._every.total_seconds())
        finally:
            engine.dispose()

    def _pause(self, seconds: float) -> None:
        if self._stopping.wait(seconds):
            raise _Stopping

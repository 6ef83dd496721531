"""Retention: dropping old raw delivery bodies, keeping everything else.

The delivery's record (when, from where, outcome, size, headers), the jobs and their event
history stay; only the body goes, in small transactions so that ingest never waits long for the
write lock. A delivery whose body is gone can no longer be replayed (410).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, select, update

from app import models
from app.config import Settings
from app.db import create_sync_engine

log = logging.getLogger(__name__)
BATCH = 1000


def purge_bodies(engine: Engine, *, older_than: timedelta) -> int:
    """Drop the bodies of deliveries received before now - `older_than`; returns how many."""
    cutoff = datetime.now(UTC) - older_than
    delivery = models.Delivery
    purged = 0
    while True:
        chunk = (
            select(delivery.id)
            .where(delivery.received_at < cutoff, delivery.body.is_not(None))
            .limit(BATCH)
        )
        with engine.begin() as connection:
            done = connection.execute(
                update(delivery).where(delivery.id.in_(chunk)).values(body=None)
            ).rowcount
        purged += done
        if done < BATCH:
            return purged


async def purge_periodically(
    settings: Settings, *, older_than: timedelta, every: timedelta
) -> None:
    """Run for the life of the process; a failed run is logged and tried again next time."""
    engine = create_sync_engine(settings)
    try:
        while True:
            try:
                purged = await asyncio.to_thread(purge_bodies, engine, older_than=older_than)
            except Exception:
                log.exception("retention run failed")
            else:
                log.info("retention: dropped %d delivery bodies older than %s", purged, older_than)
            await asyncio.sleep(every.total_seconds())
    finally:
        engine.dispose()

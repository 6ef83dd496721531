"""The running parts of a stemhook process, started and stopped in one place.

The web application (its lifespan) and command-line jobs such as a bulk replay share them:
the writer that owns write transactions, the read database, the change watch, retention, and
the background process that fetches output files and polls providers (app/background.py).
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from app.background import BackgroundProcess, needed
from app.config import Settings
from app.db import ReadDatabase, open_read_database
from app.ingest.in_flight import WritesInFlight
from app.ingest.writer import Writer
from app.retention import PeriodicPurge, retention_plan
from app.storage.factory import open_store
from app.storage.store import FileStore
from app.watch import JobWatch

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Runtime:
    writer: Writer
    read_db: ReadDatabase
    watch: JobWatch
    files: FileStore


def _start_retention(settings: Settings, files: FileStore) -> PeriodicPurge | None:
    plan = retention_plan(settings, files)
    if plan is None:
        return None
    retention = PeriodicPurge(settings, plan)
    retention.start()
    return retention


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Runtime]:
    # The writes awaited, seen by the background process, which works between them.
    in_flight = WritesInFlight.shared()
    writer = Writer(settings, in_flight)
    read_db = open_read_database(settings)
    watch = JobWatch(
        read_db.sessions, poll_s=settings.wait_poll_s, max_waiters=settings.max_waiters
    )
    await writer.start()
    watch.start()
    # What start-up built lives as long as the process: keep it out of the collector's full
    # passes, whose pauses otherwise set the read API's p99
    # (docs/decisions/0001-group-commit-in-a-writer-process.md).
    gc.collect()
    gc.freeze()
    files = open_store(settings)
    retention = _start_retention(settings, files)
    background = BackgroundProcess(settings, in_flight) if needed(settings) else None
    if background is not None:
        await background.start()
    try:
        yield Runtime(writer, read_db, watch, files)
    finally:
        # A batch's statements each give up within the write timeout: a best-effort wait.
        if background is not None:
            await background.stop()
        if retention is not None and not await retention.stop(
            timeout_s=2 * settings.write_timeout_s + 2
        ):
            log.warning("retention was still running at shutdown; its lease will run out")
        await watch.stop()
        await writer.stop()
        await read_db.engine.dispose()

"""Retention of stored files, only when asked (`stemhook purge --files-older-than`,
STEMHOOK_PURGE_FILES_OLDER_THAN): the copies stored longer ago are removed from the store.

A removed copy's row becomes skipped, its error saying why and since when, its storage key
cleared; what was stored (size, digests, type, when) stays, as a delivery keeps its size once
its body is gone. The API then shows it without an href, and GET href answers 404.

Each batch deletes the bytes first, then marks the rows. A crash between leaves rows that still
say stored over bytes that are gone (GET href: 404 "missing from the store") until the next
run, which finds them still stored and old, deletes again (nothing left: a no-op) and marks
them. Marking first would instead need a journal to find the bytes a crash left behind rows
that say removed. Rows leave the stored_at index as they are marked, so a run starts at the
oldest copy still stored and reads nothing earlier runs removed. One process at a time, by
its own lease (retention_lease.py), so that it neither waits for nor holds up the bodies'.
Writes are short transactions in SQLite writers' turn (app/ingest/turns.py), as the mirror's;
the deletes happen outside any transaction.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, String, literal_column, select, update
from sqlalchemy.sql.expression import ColumnClause

from app import models, retention_lease
from app.config import format_duration
from app.ingest.turns import Turns, turn_transaction, writer_turns
from app.mirror.sources import FileStatus
from app.storage.store import FileStore

log = logging.getLogger(__name__)
TASK = "stored_files"
# Rows a transaction marks: a crash leaves at most this many saying stored over deleted bytes.
BATCH_FILES = 100
# How long a write transaction may wait for SQLite writers' turn (app/ingest/turns.py).
_TURN_S = 30.0
# A literal, not a parameter: SQLite uses a partial index only for a query that names its
# condition itself.
_STORED: ColumnClause[str] = literal_column(f"'{FileStatus.STORED.value}'", String())


def purge_files(
    engine: Engine,
    store: FileStore,
    *,
    older_than: timedelta,
    pause: Callable[[float], None] = time.sleep,
) -> int | None:
    """Remove the copies stored before now - `older_than`; how many, or None when another
    process is removing them now. `pause` is called between batches (with 0: the writes take
    turns, so the lock needs no gap); a stopping caller raises from it."""
    turns = writer_turns(engine)
    try:
        with _transaction(engine, turns) as connection:
            me = retention_lease.take(connection, TASK)
        if me is None:
            return None
        try:
            return _purge(engine, turns, store, me, older_than=older_than, pause=pause)
        finally:
            with _transaction(engine, turns) as connection:
                retention_lease.release(connection, TASK, me)
    finally:
        turns.close()


def _purge(
    engine: Engine,
    turns: Turns,
    store: FileStore,
    me: str,
    *,
    older_than: timedelta,
    pause: Callable[[float], None],
) -> int:
    now = datetime.now(UTC)
    cutoff = now - older_than
    why = f"removed by retention after {format_duration(older_than)} on {now.date().isoformat()}"
    purged = 0
    while True:
        with _transaction(engine, turns) as connection:
            if retention_lease.renew(connection, TASK, me) is None:
                log.warning("retention: the files' lease ran out; another process carries on")
                return purged
            batch = _oldest_stored(connection, before=cutoff)
        deleted: list[int] = []
        try:
            for file_id, key in batch:
                if key is not None:
                    store.delete(key)
                deleted.append(file_id)
        finally:
            # Also after a failed delete: those before it are gone and must say so.
            if deleted:
                with _transaction(engine, turns) as connection:
                    _mark_removed(connection, deleted, why=why)
        purged += len(deleted)
        if len(batch) < BATCH_FILES:
            return purged
        pause(0)


def _oldest_stored(connection: Connection, *, before: datetime) -> Sequence[tuple[int, str | None]]:
    """Up to BATCH_FILES stored copies stored before `before`, oldest first, by the partial
    stored_at index."""
    f = models.JobFile
    rows = connection.execute(
        select(f.id, f.storage_key)
        .where(f.status == _STORED, f.stored_at < before)
        .order_by(f.stored_at)
        .limit(BATCH_FILES)
    )
    return [(row.id, row.storage_key) for row in rows]


def _mark_removed(connection: Connection, ids: list[int], *, why: str) -> None:
    f = models.JobFile
    connection.execute(
        update(f)
        .where(f.id.in_(ids), f.status == _STORED)
        .values(status=FileStatus.SKIPPED.value, error=why, storage_key=None)
    )


def _transaction(engine: Engine, turns: Turns) -> contextlib.AbstractContextManager[Connection]:
    return turn_transaction(engine, turns, wait_s=_TURN_S)

"""A batch written as the committer writes it, in a transaction the test holds open or ends."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import Connection, Engine, text

from app.ingest.driver import Cursor
from app.ingest.intake import Intake, Receipt
from app.ingest.statements import build_statements
from app.ingest.store import begin, store_batch
from app.mirror.sources import MirrorPolicy
from app.polling.watches import DEFAULT_WATCH
from app.providers.model import Provider

MIRROR_ON = MirrorPolicy(enabled=True, cos=False)


def transaction_number(connection: Connection) -> int:
    """The number of the connection's transaction, as the committer learns it (its first
    statement; on PostgreSQL asking again gives the same)."""
    cursor = Cursor(connection)
    try:
        return begin(cursor, build_statements(connection.dialect), timeout_ms=60_000)
    finally:
        cursor.close()


def stored(
    connection: Connection,
    intakes: list[Intake],
    *,
    mirror: MirrorPolicy = MIRROR_ON,
    confirm: frozenset[Provider] = frozenset(),
) -> list[Receipt]:
    """The intakes written in the connection's transaction, not committed; output files queued
    as `mirror` says (the default's: fetched, COS files skipped), the claims of jobs of
    `confirm`'s providers judged when they finish."""
    tx = transaction_number(connection)
    cursor = Cursor(connection)
    try:
        return store_batch(
            cursor,
            build_statements(connection.dialect),
            intakes,
            tx=tx,
            mirror=mirror,
            watch=DEFAULT_WATCH,
            confirm=confirm,
        )
    finally:
        cursor.close()


def wait_for_a_lock_wait(engine: Engine, waiter_alive: Callable[[], bool]) -> None:
    """Until a session of this PostgreSQL database waits for a lock (the waiter's, which must
    not end meanwhile)."""
    waiting = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    deadline = time.monotonic() + 30
    with engine.connect() as observer:
        while observer.execute(waiting).scalar_one() == 0:
            assert waiter_alive(), "the other transaction finished without waiting"
            assert time.monotonic() < deadline, "the other transaction never waited"
            observer.rollback()  # a fresh snapshot of pg_stat_activity
            time.sleep(0.01)

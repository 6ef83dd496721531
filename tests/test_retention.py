"""Retention's cost and manners: proportional to what it drops, one process at a time, short
batches that leave SQLite's write lock to the callbacks, and a clean stop."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, insert, text

from app import models, retention
from app.db import create_sync_engine
from app.retention import purge_bodies
from bench.retention import delivery_rows_read
from tests.conftest import Backend

AGE = timedelta(days=30)
LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)


def add_deliveries(
    engine: Engine,
    count: int,
    *,
    first: datetime,
    body: bytes = b"{}",
    apart: timedelta = timedelta(seconds=1),
) -> None:
    rows = [
        {
            "received_at": first + n * apart,
            "endpoint": "auto",
            "outcome": "rejected",
            "headers": {},
            "body_size": len(body),
            "body": body,
        }
        for n in range(count)
    ]
    with engine.begin() as connection:
        connection.execute(insert(models.Delivery), rows)


def bodies_left(engine: Engine) -> int:
    with engine.connect() as connection:
        left: int = connection.scalar(text("SELECT count(*) FROM delivery WHERE body IS NOT NULL"))
    return left


class Work:
    """What a purge costs its database, counted deterministically: on PostgreSQL the delivery
    rows its transactions read (the server's own counts, at the start and the end of each),
    on SQLite the virtual-machine instructions its statements run."""

    def __init__(self, backend: Backend) -> None:
        self.engine = create_sync_engine(backend.settings())
        self.done = 0
        self.per_transaction: list[int] = []
        self.counting = False
        self._read_before = 0
        if backend.name == "sqlite":
            event.listen(self.engine, "connect", self._count_instructions)
        else:
            event.listen(self.engine, "begin", self._transaction_begins)
            event.listen(self.engine, "commit", self._transaction_commits)

    def _count_instructions(self, dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.set_progress_handler(self._instruction, 1)

    def _instruction(self) -> int:
        self.done += self.counting
        return 0

    def _transaction_begins(self, connection: Any) -> None:
        self._read_before = delivery_rows_read(connection)

    def _transaction_commits(self, connection: Any) -> None:
        if self.counting:
            self.per_transaction.append(delivery_rows_read(connection) - self._read_before)
            self.done += self.per_transaction[-1]

    @contextmanager
    def counted(self) -> Iterator[None]:
        self.done, self.counting = 0, True
        try:
            yield
        finally:
            self.counting = False


@pytest.fixture
def work(backend: Backend, engine: Engine) -> Iterator[Work]:
    counted = Work(backend)
    yield counted
    counted.engine.dispose()


def no_pause(_seconds: float) -> None:
    pass


def test_a_purge_costs_what_it_drops_not_what_earlier_ones_dropped(
    engine: Engine, work: Work
) -> None:
    add_deliveries(engine, 5, first=LONG_AGO)
    with work.counted():
        assert purge_bodies(work.engine, older_than=AGE) == 5
    dropping_five_alone = work.done
    # A minute apart: a run looks retention.REVISIT behind its mark again, two of them.
    add_deliveries(engine, 2500, first=LONG_AGO + timedelta(days=1), apart=timedelta(minutes=1))
    assert purge_bodies(work.engine, older_than=AGE) == 2500
    add_deliveries(engine, 5, first=LONG_AGO + timedelta(days=5))

    with work.counted():
        assert purge_bodies(work.engine, older_than=AGE) == 5

    assert bodies_left(engine) == 0
    # Not the 2,505 rows (or their instructions) behind it again.
    assert dropping_five_alone > 0
    assert work.done <= 2 * dropping_five_alone


@pytest.mark.postgres_only
def test_no_transaction_reads_a_long_emptied_history_not_even_after_an_upgrade(
    engine: Engine, work: Work
) -> None:
    # Bodies an earlier version dropped, which kept no mark: the first run must still not read
    # all of them in one statement (PostgreSQL's statement timeout would end it every time).
    add_deliveries(engine, 20_000, first=LONG_AGO)
    with engine.begin() as connection:
        connection.execute(text("UPDATE delivery SET body = NULL"))
    add_deliveries(engine, 5, first=LONG_AGO + timedelta(days=1))
    with engine.begin() as connection:
        # What autovacuum does by itself on a table this size in production.
        connection.execute(text("ANALYZE delivery"))

    with work.counted():
        assert purge_bodies(work.engine, older_than=AGE) == 5

    assert bodies_left(engine) == 0
    # A batch reads its rows from the index, and those it drops again to update them.
    assert max(work.per_transaction) <= 2 * 1000  # app.retention.BATCH_ROWS
    assert sum(work.per_transaction) >= 20_005


def test_a_delivery_committed_behind_the_mark_is_purged_by_the_next_run(engine: Engine) -> None:
    add_deliveries(engine, 3, first=LONG_AGO)
    assert purge_bodies(engine, older_than=AGE) == 3
    # Stamped before the last one purged, committed only now (a slow commit, a replica's clock).
    add_deliveries(engine, 1, first=LONG_AGO + timedelta(seconds=1.5))

    assert purge_bodies(engine, older_than=AGE) == 1
    assert bodies_left(engine) == 0


@pytest.mark.postgres_only
def test_the_mark_holds_a_delivery_id_past_32_bits(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(text("SELECT setval('delivery_id_seq', 3000000000)"))
    add_deliveries(engine, 2, first=LONG_AGO)

    assert purge_bodies(engine, older_than=AGE) == 2
    assert bodies_left(engine) == 0


def test_deliveries_received_in_the_same_microsecond_are_all_purged(engine: Engine) -> None:
    # More than a batch: the mark falls among them, and the next batch carries on by id.
    add_deliveries(engine, 1500, first=LONG_AGO, apart=timedelta(0))

    assert purge_bodies(engine, older_than=AGE, pause=no_pause) == 1500
    assert bodies_left(engine) == 0


def test_one_process_purges_at_a_time(backend: Backend, engine: Engine) -> None:
    add_deliveries(engine, 1500, first=LONG_AGO)
    replica = create_sync_engine(backend.settings())
    meanwhile: list[int | None] = []
    pauses: list[float] = []

    def another_replica_tries(seconds: float) -> None:
        pauses.append(seconds)
        meanwhile.append(purge_bodies(replica, older_than=AGE, pause=no_pause))

    try:
        purged = purge_bodies(engine, older_than=AGE, pause=another_replica_tries)
        after = purge_bodies(replica, older_than=AGE, pause=no_pause)
    finally:
        replica.dispose()

    assert (purged, meanwhile, after) == (1500, [None], 0)
    # Between two batches, at least as long as SQLite's busy handler ever sleeps.
    assert pauses[0] >= retention.MIN_PAUSE_S


def test_a_batch_frees_a_bounded_number_of_bytes(engine: Engine, work: Work) -> None:
    megabyte = b"x" * (1024 * 1024)
    add_deliveries(engine, 20, first=LONG_AGO, body=megabyte)
    updated: list[int] = []

    @event.listens_for(work.engine, "after_cursor_execute")
    def _batch(_conn: Any, cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("UPDATE delivery SET body"):
            updated.append(cursor.rowcount)

    assert purge_bodies(work.engine, older_than=AGE) == 20

    # Each batch holds SQLite's write lock while it frees its bodies' pages: a bounded amount.
    assert sum(updated) == 20
    assert max(updated) <= 8  # of 1 MiB each: app.retention.BATCH_BYTES


@pytest.mark.anyio
async def test_a_stopping_process_waits_for_its_purge_to_stop_after_the_current_batch(
    backend: Backend, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopped between two batches, the periodic purge ends its run there, releases the lease
    and closes its connections: one left to the collector open surfaced as a ResourceWarning
    in a later test (made an error by filterwarnings)."""
    add_deliveries(engine, 3 * retention.BATCH_ROWS, first=LONG_AGO)
    # A pause the test never outwaits: only the stop ends it.
    monkeypatch.setattr(retention, "MIN_PAUSE_S", 30)
    plan = retention.RetentionPlan(every=timedelta(hours=1), deliveries_older_than=AGE)
    purge = retention.PeriodicPurge(backend.settings(), plan)
    purge.start()
    for _ in range(6000):  # until the first batch is committed: a minute is generous
        if bodies_left(engine) == 2 * retention.BATCH_ROWS:
            break
        await asyncio.sleep(0.01)
    else:
        pytest.fail("the first batch was not committed within a minute")
    stopped = await purge.stop(timeout_s=60)
    gc.collect()

    with engine.connect() as connection:
        lease = connection.scalar(text("SELECT leased_by FROM purge_state"))
    assert (stopped, lease, bodies_left(engine)) == (True, None, 2 * retention.BATCH_ROWS)

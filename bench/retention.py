"""Retention at scale: dropping 100,000 bodies out of 2,000,000 deliveries.

    .venv/bin/python -m bench.retention [--backend sqlite|postgresql|both]

Per backend a fresh database is built by the migrations and filled in one statement each
(SQLite: a recursive CTE, PostgreSQL: generate_series) with, oldest first, 1,800,000
deliveries whose bodies an earlier run dropped (purge_state records where it stopped),
100,000 older than 30 days with small bodies, and 100,000 of the last day. Then
`purge_bodies(older_than=30d)` runs once, while a writer commits one delivery every 10 ms
beside it, as callbacks would. Printed per backend: the fill's time, the purge's wall time,
its batches (time each held its transaction, first ten against last ten, and the longest),
what it read (PostgreSQL: delivery rows read, per the server's per-transaction counts; SQLite:
virtual-machine instructions, as it counts no rows), and the concurrent writer's commits
(slowest, and how many failed: each would have been a 503).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import Engine, event, insert, text

from app import models
from app.config import Settings
from app.db import create_sync_engine
from app.retention import TASK, purge_bodies
from app.schema import upgrade_to_head

HISTORY, TO_DROP, RECENT = 1_800_000, 100_000, 100_000
TOTAL = HISTORY + TO_DROP + RECENT
AGE = timedelta(days=30)
PG_ADMIN = os.environ.get("STEMHOOK_BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/test")
PG_DATABASE = "stemhook_bench_retention"
BODY = b'{"JobsDetail":{}}'

# Deliveries 1..HISTORY+TO_DROP one second apart from 90 days ago; the recent ones within the
# last day. Parameters: total, history, old (first received_at), recent (idem), body.
FILL = {
    "sqlite": """
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :total)
        INSERT INTO delivery (id, received_at, endpoint, outcome, headers, body_size, body)
        SELECT i,
               CASE WHEN i <= :history + :to_drop
                    THEN strftime('%Y-%m-%d %H:%M:%f', :old, '+' || i || ' seconds')
                    ELSE strftime(
                        '%Y-%m-%d %H:%M:%f', :recent,
                        '+' || ((i - :history - :to_drop) / 2) || ' seconds'
                    )
               END,
               'auto', 'accepted', '{}', length(:body),
               CASE WHEN i <= :history THEN NULL ELSE :body END
        FROM n""",
    "postgresql": """
        INSERT INTO delivery (id, received_at, endpoint, outcome, headers, body_size, body)
        SELECT i,
               CASE WHEN i <= :history + :to_drop THEN :old + make_interval(secs => i)
                    ELSE :recent + make_interval(secs => (i - :history - :to_drop) / 2) END,
               'auto', 'accepted', '{}', length(:body),
               CASE WHEN i <= :history THEN NULL ELSE :body END
        FROM generate_series(1, :total) AS i;
        SELECT setval(pg_get_serial_sequence('delivery', 'id'), :total)""",
}


@dataclass
class Batches:
    """Each purge transaction that dropped bodies: how long it held, and what it read."""

    held_s: list[float] = field(default_factory=list)
    read: list[int] = field(default_factory=list)
    _began: float = 0.0
    _read_before: int = 0
    _instructions: int = 0
    _dropping: bool = False

    def watch(self, engine: Engine) -> None:
        postgres = engine.dialect.name == "postgresql"
        event.listen(engine, "begin", lambda conn: self._begin(conn, postgres))
        event.listen(engine, "commit", lambda conn: self._commit(conn, postgres))
        event.listen(engine, "before_cursor_execute", self._statement)
        if not postgres:
            event.listen(engine, "connect", self._count_instructions)

    def _begin(self, connection: Any, postgres: bool) -> None:
        self._began, self._dropping = time.perf_counter(), False
        self._read_before = delivery_rows_read(connection) if postgres else self._instructions

    def _statement(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        self._dropping |= statement.startswith("UPDATE delivery SET body")

    def _commit(self, connection: Any, postgres: bool) -> None:
        if self._dropping:
            read = delivery_rows_read(connection) if postgres else self._instructions
            self.read.append(read - self._read_before)
            self.held_s.append(time.perf_counter() - self._began)

    def _count_instructions(self, dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.set_progress_handler(self._hundred_instructions, 100)

    def _hundred_instructions(self) -> int:
        self._instructions += 100
        return 0


def delivery_rows_read(connection: Any) -> int:
    """PostgreSQL's pending count of delivery rows this backend read: the current transaction's,
    and earlier ones' not flushed yet, so only a difference within one transaction tells."""
    cursor = connection.connection.dbapi_connection.cursor()
    cursor.execute(
        "SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)"
        " FROM pg_stat_xact_user_tables WHERE relname = 'delivery'"
    )
    read: int = cursor.fetchone()[0]
    cursor.close()
    return read


@contextmanager
def concurrent_writer(engine: Engine) -> Iterator[tuple[list[float], list[str]]]:
    """Commits a delivery every 10 ms while inside; yields their durations and failures."""
    durations: list[float] = []
    failures: list[str] = []
    stop = threading.Event()
    row = {
        "received_at": datetime.now(UTC),
        "endpoint": "auto",
        "outcome": "accepted",
        "headers": {},
        "body_size": len(BODY),
        "body": BODY,
    }

    def write() -> None:
        while not stop.wait(0.01):
            started = time.perf_counter()
            try:
                with engine.begin() as connection:
                    connection.execute(insert(models.Delivery), row)
            except Exception as exc:
                failures.append(type(exc).__name__)
            else:
                durations.append(time.perf_counter() - started)

    thread = threading.Thread(target=write, name="bench-writer")
    thread.start()
    try:
        yield durations, failures
    finally:
        stop.set()
        thread.join()


def fresh_database(backend: str) -> str:
    if backend == "sqlite":
        path = Path(tempfile.mkdtemp(prefix="stemhook-retention-")) / "bench.db"
        return f"sqlite:///{path}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{PG_DATABASE}"')
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{PG_DATABASE}"


def fill(engine: Engine) -> float:
    now = datetime.now(UTC).replace(tzinfo=None)
    old = now - timedelta(days=90)
    params = {
        "total": TOTAL,
        "history": HISTORY,
        "to_drop": TO_DROP,
        "old": old,
        "recent": now - timedelta(days=1),
        "body": BODY,
    }
    started = time.perf_counter()
    with engine.begin() as connection:
        for statement in FILL[engine.dialect.name].split(";"):
            connection.execute(text(statement), params)
        # Where the earlier run that dropped the history's bodies stopped.
        connection.execute(
            insert(models.PurgeState).values(
                name=TASK,
                purged_to=(old + timedelta(seconds=HISTORY)).replace(tzinfo=UTC),
                purged_id=HISTORY,
            )
        )
    if engine.dialect.name == "postgresql":
        # As autovacuum would have by now.
        with engine.begin() as connection:
            connection.execute(text("ANALYZE delivery"))
    return time.perf_counter() - started


def run(backend: str, say: Callable[[str], None]) -> None:
    settings = Settings(_env_file=None, database_url=fresh_database(backend))  # type: ignore[call-arg]
    upgrade_to_head(settings)
    engine = create_sync_engine(settings, bounded=False)
    filled_s = fill(engine)
    engine.dispose()
    say(f"{backend}: filled {TOTAL:,} deliveries in {filled_s:.1f} s")

    purging = create_sync_engine(settings)
    writing = create_sync_engine(settings)
    batches = Batches()
    batches.watch(purging)
    try:
        with concurrent_writer(writing) as (commits, failures):
            started = time.perf_counter()
            dropped = purge_bodies(purging, older_than=AGE)
            took_s = time.perf_counter() - started
    finally:
        purging.dispose()
        writing.dispose()

    held_ms = [held * 1000 for held in batches.held_s]
    unit = "delivery rows read" if backend == "postgresql" else "VM instructions"
    say(f"{backend}: dropped {dropped:,} bodies in {took_s:.1f} s, {len(held_ms)} batches")
    say(
        f"  batch held its transaction: first 10 {statistics.mean(held_ms[:10]):.1f} ms,"
        f" last 10 {statistics.mean(held_ms[-10:]):.1f} ms, longest {max(held_ms):.1f} ms"
    )
    say(
        f"  {unit} per batch: first 10 {statistics.mean(batches.read[:10]):,.0f},"
        f" last 10 {statistics.mean(batches.read[-10:]):,.0f}; total {sum(batches.read):,}"
    )
    say(
        f"  concurrent writer: {len(commits)} commits, slowest {max(commits) * 1000:.1f} ms,"
        f" {len(failures)} failed {sorted(set(failures))}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    for backend in ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]:
        run(backend, print)


if __name__ == "__main__":
    main()

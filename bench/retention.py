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
(slowest, and how many failed: each would have been a 503). With both backends the figures
also replace BENCHMARKS.md's retention section, between its markers (bench/ingest/report.py).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
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
from app.retention import MIN_PAUSE_S, TASK, purge_bodies
from app.schema import upgrade_to_head
from bench.ingest.databases import PG_ADMIN, PG_SERVER
from bench.ingest.facts import commit, load, machine
from bench.ingest.report import REPORT, RETENTION

HISTORY, TO_DROP, RECENT = 1_800_000, 100_000, 100_000
TOTAL = HISTORY + TO_DROP + RECENT
AGE = timedelta(days=30)
PG_DATABASE = "stemhook_bench_retention"
BODY = b'{"JobsDetail":{}}'
BACKENDS = ["sqlite", "postgresql"]
LABELS = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}

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
    return f"{PG_SERVER}/{PG_DATABASE}"


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


@dataclass(frozen=True)
class Purge:
    """One backend's run: the fill, then the purge beside a writer."""

    backend: str
    filled_s: float
    dropped: int | None
    took_s: float
    held_ms: list[float]
    read: list[int]
    commits: list[float]
    failures: list[str]

    def rows(self) -> list[tuple[str, str]]:
        unit = "delivery rows" if self.backend == "postgresql" else "VM instructions"
        return [
            ("deliveries", f"{TOTAL:,} (filled in {self.filled_s:.1f} s)"),
            ("bodies dropped", f"{self.dropped or 0:,}"),
            ("batches", f"{len(self.held_ms)}"),
            (
                "total time",
                f"{self.took_s:.1f} s, with the pauses between batches"
                f" (at least {MIN_PAUSE_S * 1000:.0f} ms each)",
            ),
            (
                "transaction time per batch",
                f"first 10 {statistics.mean(self.held_ms[:10]):.1f} ms,"
                f" last 10 {statistics.mean(self.held_ms[-10:]):.1f} ms,"
                f" longest {max(self.held_ms):.1f} ms",
            ),
            (
                f"{unit} a batch reads",
                f"first 10 {statistics.mean(self.read[:10]):,.0f},"
                f" last 10 {statistics.mean(self.read[-10:]):,.0f}; total {sum(self.read):,}",
            ),
            (
                "concurrent writer",
                f"{len(self.commits)} commits, slowest {max(self.commits) * 1000:.1f} ms,"
                f" {len(self.failures)} failed {sorted(set(self.failures)) or ''}".rstrip(),
            ),
        ]


def run(backend: str) -> Purge:
    settings = Settings(_env_file=None, database_url=fresh_database(backend))  # type: ignore[call-arg]
    upgrade_to_head(settings)
    engine = create_sync_engine(settings, bounded=False)
    filled_s = fill(engine)
    engine.dispose()

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
    return Purge(backend, filled_s, dropped, took_s, held_ms, batches.read, commits, failures)


def section(purges: list[Purge], loads: list[str]) -> str:
    """BENCHMARKS.md's retention section."""
    lines = [
        f"Run at commit `{commit()}` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Per backend a"
        f" fresh database built by the migrations is filled with {HISTORY:,} deliveries whose"
        f" bodies an earlier run dropped, {TO_DROP:,} older than {AGE.days} days with small"
        f" bodies and {RECENT:,} of the last day; then `purge_bodies(older_than={AGE.days}"
        " days)` runs once while a writer commits a delivery every 10 ms beside it, as"
        " callbacks would (a failed commit would be a callback answered 503). What a batch"
        " reads is counted by the server on PostgreSQL (delivery rows) and as virtual-machine"
        " instructions on SQLite. Reproduce: `.venv/bin/python -m bench.retention` (about a"
        " minute; `make bench` runs it after the ingest benchmark).",
        "",
        f"Machine: {machine(PG_SERVER)}. It is shared with other work, whose"
        " load moves the times but not what a batch reads; load average at"
        f" {'; at '.join(loads)}.",
    ]
    for purge in purges:
        lines += ["", f"### {LABELS[purge.backend]}", "", "| figure | value |", "|---|---|"]
        lines += [f"| {figure} | {value} |" for figure, value in purge.rows()]
    return RETENTION.wrap("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    loads = [load("start")]
    purges = []
    for backend in BACKENDS if args.backend == "both" else [args.backend]:
        purges.append(purge := run(backend))
        print(f"{backend}:", *(f"  {figure}: {value}" for figure, value in purge.rows()), sep="\n")
    loads.append(load("end"))
    if args.backend == "both":
        REPORT.write_text(RETENTION.placed(REPORT.read_text(), section(purges, loads)))
        print(f"wrote its section of {REPORT}")


if __name__ == "__main__":
    main()

"""The benchmark's own databases: fresh ones, copies of the 1M-job fill, and what they hold.

Nothing here writes into a database someone else uses: each server gets a fresh SQLite file
in the scratch directory or a PostgreSQL database of the benchmark's own (dropped first), and
the growth runs write into a copy of bench/query_data.py's cached fill, never the fill itself.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import psycopg

from bench.query_data import PostgresTarget, SqliteTarget

# The PostgreSQL server the later benchmarks (mirror, polling, retention) make their databases
# on, through this database of it.
PG_ADMIN = os.environ.get("STEMHOOK_BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/test")
PG_SERVER = PG_ADMIN.rsplit("/", 1)[0]


class Backend(StrEnum):
    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"

    @property
    def label(self) -> str:
        return {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[self.value]


@dataclass(frozen=True)
class Mark:
    """The highest ids before a run: what lies above them, the run wrote."""

    delivery: int
    job: int


@dataclass(frozen=True)
class Stored:
    outcomes: dict[str, int]
    jobs: int

    @property
    def deliveries(self) -> int:
        return sum(self.outcomes.values())


@dataclass(frozen=True)
class Commits:
    """A PostgreSQL server's counters (pg_stat_database, pg_stat_wal), or their growth."""

    here: int  # transactions committed in the scratch database
    everywhere: int  # in every database of the server
    wal_syncs: int  # the whole server's

    def __sub__(self, earlier: Commits) -> Commits:
        return Commits(
            self.here - earlier.here,
            self.everywhere - earlier.everywhere,
            self.wal_syncs - earlier.wal_syncs,
        )


@dataclass(frozen=True)
class Backends:
    """The processes pg_stat_activity lists: the PostgreSQL server's, the postmaster aside."""

    pids: frozenset[int]
    elsewhere: frozenset[int]  # backends of other databases: other work on a shared server


_MARK = "SELECT coalesce(max(id), 0) FROM delivery UNION ALL SELECT coalesce(max(id), 0) FROM job"
_OUTCOMES = "SELECT outcome, count(*) FROM delivery WHERE id > {p} GROUP BY outcome"
_JOBS = "SELECT count(*) FROM job WHERE id > {p}"
_FILE_STATUSES = "SELECT status, count(*) FROM job_file GROUP BY status"
_COMMITS = (
    "SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()),"
    " (SELECT sum(xact_commit) FROM pg_stat_database), (SELECT wal_sync FROM pg_stat_wal)"
)
_OTHER_SESSIONS = (
    "SELECT count(*) FROM pg_stat_activity"
    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
)
_BACKENDS = "SELECT pid, datname <> current_database() FROM pg_stat_activity"
SETTLE_S = 10.0


@dataclass(frozen=True)
class Scratch:
    backend: Backend
    url: str

    @property
    def path(self) -> Path:
        return Path(self.url.removeprefix("sqlite:///"))

    def mark(self) -> Mark:
        """Zero for a database the server has not migrated yet."""
        try:
            rows = self._query(_MARK)
        except (sqlite3.OperationalError, psycopg.errors.UndefinedTable):
            return Mark(0, 0)
        return Mark(int(rows[0][0]), int(rows[1][0]))

    def stored_since(self, mark: Mark) -> Stored:
        outcomes = {str(o): int(n) for o, n in self._query(_OUTCOMES, mark.delivery)}
        jobs = int(self._query(_JOBS, mark.job)[0][0])
        return Stored(outcomes, jobs)

    def file_statuses(self) -> dict[str, int]:
        """How many job_file rows are in each status (app/mirror/sources.py)."""
        return {str(status): int(n) for status, n in self._query(_FILE_STATUSES)}

    def commits(self) -> Commits | None:
        """None on SQLite. A backend's counts reach these views when it has been idle a while or
        ended: once the server stopped, they are whole when its backends have gone (waited for
        up to SETTLE_S)."""
        if self.backend is Backend.SQLITE:
            return None
        # Autocommit: each statement sees the views afresh, not its transaction's snapshot.
        with psycopg.connect(self.url, autocommit=True) as connection:
            deadline = time.monotonic() + SETTLE_S
            while _count(connection, _OTHER_SESSIONS) and time.monotonic() < deadline:
                time.sleep(0.1)
            row = connection.execute(_COMMITS).fetchone()
        assert row is not None
        return Commits(*(int(value or 0) for value in row))

    def backends(self) -> Backends:
        """The PostgreSQL server's processes it lists itself, by pid."""
        rows = self._query(_BACKENDS)
        return Backends(
            frozenset(pid for pid, _ in rows), frozenset(p for p, other in rows if other)
        )

    def drop(self) -> None:
        if self.backend is Backend.SQLITE:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        else:
            _admin(self.url, f'DROP DATABASE IF EXISTS "{_name(self.url)}" WITH (FORCE)')

    def _query(self, sql: str, *values: int) -> list[tuple[Any, ...]]:
        if self.backend is Backend.SQLITE:
            if not self.path.exists():
                raise sqlite3.OperationalError("no database yet")
            with closing(sqlite3.connect(self.path)) as connection:
                return connection.execute(sql.format(p="?"), values).fetchall()
        with psycopg.connect(self.url) as connection:
            return connection.execute(sql.format(p="%s"), values).fetchall()


def fresh(backend: Backend, name: str, *, workdir: Path, postgres_server: str) -> Scratch:
    """An empty database: stemhook's start-up migrates it."""
    if backend is Backend.SQLITE:
        scratch = Scratch(backend, f"sqlite:///{workdir / f'{name}.db'}")
        scratch.drop()
        return scratch
    scratch = Scratch(backend, f"{postgres_server}/{name}")
    scratch.drop()
    _admin(scratch.url, f'CREATE DATABASE "{name}"')
    return scratch


def copy_of(
    template: SqliteTarget | PostgresTarget, name: str, *, workdir: Path, postgres_server: str
) -> Scratch:
    """A copy of a filled database, for a run to write into."""
    if isinstance(template, SqliteTarget):
        scratch = Scratch(Backend.SQLITE, f"sqlite:///{workdir / f'{name}.db'}")
        scratch.drop()
        with closing(sqlite3.connect(template.path)) as connection:
            # Everything into the main file, so that the file alone is the whole database.
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        shutil.copyfile(template.path, scratch.path)
        # On disk before the run starts: otherwise the write-back of a 1.7 GB copy competes
        # with the fsyncs of the run that measures it.
        with scratch.path.open("rb+") as copied:
            os.fsync(copied.fileno())
        return scratch
    scratch = Scratch(Backend.POSTGRESQL, f"{postgres_server}/{name}")
    scratch.drop()
    # FILE_COPY copies the files after a checkpoint: ~4 s for 2 GB here, against ~12 s for
    # the default WAL_LOG. It needs the template to have no other session: wait for one.
    create = f'CREATE DATABASE "{name}" TEMPLATE "{template.database}" STRATEGY FILE_COPY'
    for attempt in range(10):
        try:
            _admin(scratch.url, create)
            return scratch
        except psycopg.errors.ObjectInUse:
            if attempt == 9:
                raise
            time.sleep(3)
    raise AssertionError("unreachable")


def _count(connection: psycopg.Connection[tuple[Any, ...]], sql: str) -> int:
    row = connection.execute(sql).fetchone()
    return int(row[0]) if row else 0


def _name(url: str) -> str:
    return url.rsplit("/", 1)[1]


def _admin(url: str, sql: str) -> None:
    admin_url = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql)

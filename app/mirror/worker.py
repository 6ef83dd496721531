"""Mirroring: the worker that claims queued output files (job_file rows), has them fetched and
stored on threads of its own (app/mirror/attempt.py), and settles what became of them.

The worker's thread alone writes to the database, one transaction at a time that does it all:
settle the attempts that ended since the last (stored, due again after a backoff, failed, or
given back by a stopping worker), renew the leases of those still running, and claim more
(app/work/queue.py). A burst of quick failures then costs a transaction every so often, not one
a file, and on SQLite each takes the writers' turn (app/ingest/turns.py), so a callback's commit
waits for at most one of them. Stopped, the worker abandons its fetches (the store keeps nothing
of a partial file) and gives their tasks back.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, select

from app import models
from app.fetching.fetcher import Fetcher
from app.ingest.in_flight import WritesInFlight
from app.ingest.turns import turn_transaction, writer_turns
from app.mirror.attempt import Attempts, Outcome, Retries, Task
from app.mirror.cos import CosKeys
from app.mirror.sources import CosBucket
from app.storage.keys import file_key
from app.storage.store import FileStore
from app.work.pool import Rounds, go_rounds, results
from app.work.queue import QueueTable, claim, release, renew, settle

log = logging.getLogger(__name__)
FILES = QueueTable.of(models.JobFile)
# How long a write transaction may wait for SQLite writers' turn (app/ingest/turns.py).
_TURN_S = 30.0
_FETCHING_NICENESS = 19


@dataclass(frozen=True, slots=True)
class MirrorOptions:
    concurrency: int
    lease: timedelta
    max_attempts: int
    retry_base: timedelta
    retry_cap: timedelta
    poll_s: float


class Mirror:
    """Fetches what the queue holds until stopped; `run` on a thread of its own."""

    def __init__(
        self,
        engine: Engine,
        *,
        fetcher: Fetcher,
        store: FileStore,
        options: MirrorOptions,
        worker: str,
        cos: CosKeys | None = None,
        cos_buckets: frozenset[CosBucket] = frozenset(),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        in_flight: WritesInFlight | None = None,
    ) -> None:
        """`cos`: the keys that sign fetches from COS buckets, and the buckets they may read;
        `clock` tells the time leases, retries and signatures are reckoned in (a test's own);
        `in_flight`: the web process's writes, between which the mirror works."""
        self._engine = engine
        self._clock = clock
        self._options = options
        self._worker = worker
        self._turns = writer_turns(engine)
        self._stop = threading.Event()
        self._writes = WritesInFlight() if in_flight is None else in_flight
        self._attempts = Attempts(
            fetcher=fetcher,
            store=store,
            retries=Retries(options.max_attempts, options.retry_base, options.retry_cap),
            stop=self._stop,
            clock=clock,
            cos=cos,
            cos_buckets=cos_buckets,
            in_flight=self._writes,
        )

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        """Settle, renew and claim, have the claimed fetched, until stopped; then settle what
        ended and give back the rest (app/work/pool.py `go_rounds`)."""
        options = self._options

        def exchange(
            ended: Sequence[Outcome], running: Sequence[Task], claiming: bool
        ) -> list[Task]:
            free = options.concurrency - len(running) if claiming else 0
            return self._exchange(ended, [task.id for task in running], limit=free)

        rounds = Rounds("mirror", log, exchange, self._attempts.outcome, _outcomes)
        try:
            go_rounds(
                rounds,
                threads=options.concurrency,
                stop=self._stop,
                poll_s=options.poll_s,
                writes=self._writes,
                initializer=_lowest_priority,
            )
        finally:
            self._turns.close()

    def run_once(self) -> int:
        """Claim what is due now, mirror it on this thread and settle it; how many tasks it took
        (tests, and a worker that must not start threads)."""
        tasks = self._exchange([], [], limit=self._options.concurrency)
        self._exchange([self._attempts.outcome(task) for task in tasks], [], limit=0)
        return len(tasks)

    def _exchange(
        self, ended: Sequence[Outcome], running: Sequence[int], *, limit: int
    ) -> list[Task]:
        """One transaction: settle what ended, renew the leases of what runs, claim up to
        `limit` more. A copy whose settle was refused (the lease ran out and another worker
        holds the task now) is this attempt's own, and deleted, unless the row names it: a
        transaction that committed though its caller saw it fail is settled again, refused."""
        with self._transaction() as connection:
            refused = [
                outcome
                for outcome in ended
                if not self._settled(connection, outcome) and not _names_copy(connection, outcome)
            ]
            now = self._clock()  # after any wait for the turn: leases count from here
            until = now + self._options.lease
            if running:
                renew(connection, FILES, running, worker=self._worker, until=until)
            rows = (
                claim(
                    connection,
                    FILES,
                    worker=self._worker,
                    now=now,
                    lease=self._options.lease,
                    limit=limit,
                )
                if limit
                else []
            )
            jobs = _jobs_of(connection, {row.job_pk for row in rows}) if rows else {}
            # Built before the commit: a row that cannot become a task rolls back its claim.
            tasks = [_task(row, jobs[row.job_pk]) for row in rows]
        for outcome in refused:
            log.warning("mirror: %s was not settled; another worker holds it now", outcome.task.key)
            if outcome.values is not None and outcome.values.get("storage_key") == outcome.task.key:
                self._attempts.delete_own_copy(outcome.task.key)
        return tasks

    def _settled(self, connection: Connection, outcome: Outcome) -> bool:
        if outcome.values is None:
            release(connection, FILES, [outcome.task.id], worker=self._worker)
            return True
        return settle(
            connection,
            FILES,
            outcome.task.id,
            worker=self._worker,
            values=outcome.values,
            retry_at=outcome.retry_at,
        )

    def _transaction(self) -> contextlib.AbstractContextManager[Connection]:
        # In the writers' turn even when nothing is due: on SQLite every transaction of this
        # engine takes the write lock at BEGIN, a read included (app/db.py).
        return turn_transaction(self._engine, self._turns, wait_s=_TURN_S)


def _lowest_priority() -> None:
    """A fetching thread takes only the CPU the callbacks leave (Linux: niceness per thread).
    The worker's own thread keeps its priority: it holds the database's write lock (on SQLite
    the writers' turn) while it settles, and preempted there it would hold up a callback's
    commit. Where the system refuses, the thread fetches at the priority it has."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), _FETCHING_NICENESS)
    except OSError as error:
        log.warning("mirror: fetching at normal priority (%s)", error)


def _outcomes(finished: dict[Future[Outcome], Task]) -> list[Outcome]:
    """A task whose thread broke is given back."""
    return results(finished, broken=lambda task: Outcome(task, None), what="mirror")


def _names_copy(connection: Connection, outcome: Outcome) -> bool:
    """Whether the task's row already names this attempt's copy (its settle committed before)."""
    files = FILES.table.c
    found = connection.scalar(select(files.storage_key).where(files.id == outcome.task.id))
    return found is not None and found == outcome.task.key


def _task(row: Any, job: Any) -> Task:
    outputs = job.outputs or []
    output = outputs[row.position] if row.position < len(outputs) else {}
    name = output.get("file_name") or row.url or row.object or ""
    # Each attempt writes a key of its own: a worker whose lease ran out while it fetched never
    # replaces (or, on an MD5 mismatch, deletes) the copy the lease's holder stored.
    version = secrets.token_hex(4)
    try:
        key = file_key(
            job.provider,
            job.job_id,
            row.position,
            str(output.get("role") or "file"),
            name,
            version=version,
        )
    except ValueError:  # nothing readable to name it by: its row's id will do
        key = f"files/{row.id}.{version}"
    return Task(
        id=row.id,
        attempts=row.attempts,
        url=row.url,
        bucket=row.bucket,
        region=row.region,
        object=row.object,
        expected_md5=row.expected_md5,
        key=key,
    )


def _jobs_of(connection: Connection, job_pks: set[int]) -> dict[int, Any]:
    job = models.Job
    rows = connection.execute(
        select(job.id, job.provider, job.job_id, job.outputs).where(job.id.in_(job_pks))
    )
    return {row.id: row for row in rows}

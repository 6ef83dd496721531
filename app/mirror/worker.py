"""Mirroring: fetching the queued output files (job_file rows) and storing them.

A worker claims due files with a lease (app/work/queue.py), fetches each on a thread of its own
through the address guard (app/fetching/), streams it into the file store (app/storage/), and
settles the row: stored with its size and digests, due again after a backoff, or failed with
the reason. While it fetches it renews its leases; stopped, it abandons its fetches (the store
keeps nothing of a partial file) and gives their tasks back.

What becomes of a failure (the fetcher's classes, app/fetching/errors.py):
- refused, too large, another status: failed at once, the error says why;
- 403, 404, 410 (gone): failed after one confirmation retry;
- no answer in time, a broken connection, 429, 5xx, a store that failed: retried with backoff
  (the server's Retry-After when longer), failed after `max_attempts`;
- an MD5 the callback gave that the stored bytes do not have: failed, the file removed.
"""

from __future__ import annotations

import contextlib
import logging
import math
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, select

from app import models
from app.fetching.errors import FetchError, Gone, PermanentFetchError, Retryable
from app.fetching.fetcher import Fetcher
from app.ingest.turns import turn_transaction, writer_turns
from app.mirror.cos import CosKeys, signed_get
from app.mirror.sources import (
    BUCKET_NOT_ALLOWED,
    NO_BUCKET,
    NO_COS_CREDENTIALS,
    CosBucket,
    FileStatus,
    may_read,
)
from app.storage.keys import file_key
from app.storage.store import FileStore, StoredFile
from app.work.queue import QueueTable, backoff, claim, release, renew, settle

log = logging.getLogger(__name__)
FILES = QueueTable.of(models.JobFile)
# A server may ask for a later retry, but not for one beyond this.
MAX_RETRY_AFTER = timedelta(hours=1)
GONE_CONFIRMATIONS = 1
# How long a write transaction may wait for SQLite writers' turn (app/ingest/turns.py).
_TURN_S = 30.0
# The longest pause after the database failed the worker, however often it did.
_MAX_PAUSE_S = 30.0


@dataclass(frozen=True, slots=True)
class MirrorOptions:
    concurrency: int
    lease: timedelta
    max_attempts: int
    retry_base: timedelta
    retry_cap: timedelta
    poll_s: float


@dataclass(frozen=True, slots=True)
class _Task:
    id: int
    attempts: int
    # A URL to GET, or an object in a COS bucket (signed when fetched: signatures expire).
    url: str | None
    bucket: str | None
    region: str | None
    object: str | None
    expected_md5: str | None
    key: str


class _Stopping(Exception):
    """The worker is stopping: the fetch is abandoned, its task given back."""


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
    ) -> None:
        """`cos`: the keys that sign fetches from COS buckets; `clock` tells the time leases,
        retries and signatures are reckoned in (a test's own)."""
        self._engine = engine
        self._cos = cos
        self._cos_buckets = cos_buckets
        self._clock = clock
        self._fetcher = fetcher
        self._store = store
        self._options = options
        self._worker = worker
        self._turns = writer_turns(engine)
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        """Claim, fetch and settle until stopped; then give back what is in hand. Leases are
        renewed before anything is claimed; a database that fails either is tried again after
        a pause that doubles up to _MAX_PAUSE_S, never given up on."""
        options = self._options
        in_flight: dict[Future[None], int] = {}
        renew_every = options.lease.total_seconds() / 3
        renewed_at = time.monotonic()
        pause = 0.0
        with ThreadPoolExecutor(options.concurrency, thread_name_prefix="mirror") as pool:
            try:
                while not self._stop.is_set():
                    try:
                        if in_flight and time.monotonic() - renewed_at >= renew_every:
                            self._renew(list(in_flight.values()))
                            renewed_at = time.monotonic()
                        free = options.concurrency - len(in_flight)
                        for task in self._claimed(free) if free else ():
                            in_flight[pool.submit(self._mirror, task)] = task.id
                        pause = 0.0
                    except Exception:
                        log.exception("mirror: the database failed a renewal or a claim")
                        pause = min(max(2 * pause, options.poll_s), _MAX_PAUSE_S)
                        self._stop.wait(pause)
                    done, _ = wait(in_flight, timeout=options.poll_s, return_when=FIRST_COMPLETED)
                    for future in done:
                        del in_flight[future]
                    if not in_flight:
                        self._stop.wait(options.poll_s)
            finally:
                self._stop.set()
                wait(in_flight)
        self._turns.close()

    def run_once(self) -> int:
        """Claim what is due now and mirror it on this thread; how many tasks it took (tests,
        and a worker that must not start threads)."""
        tasks = self._claimed(self._options.concurrency)
        for task in tasks:
            self._mirror(task)
        return len(tasks)

    def _claimed(self, limit: int) -> list[_Task]:
        # In the writers' turn even when nothing is due: on SQLite every transaction of this
        # engine takes the write lock at BEGIN, a read included (app/db.py).
        with self._transaction() as connection:
            # The lease counts from when the claim runs, after any wait for the turn.
            rows = claim(
                connection,
                FILES,
                worker=self._worker,
                now=self._clock(),
                lease=self._options.lease,
                limit=limit,
            )
            jobs = _jobs_of(connection, {row.job_pk for row in rows})
        return [self._task(row, jobs[row.job_pk]) for row in rows]

    def _task(self, row: Any, job: Any) -> _Task:
        outputs = job.outputs or []
        output = outputs[row.position] if row.position < len(outputs) else {}
        name = output.get("file_name") or row.url or row.object or ""
        # Each attempt writes a key of its own: a worker whose lease ran out while it fetched
        # never replaces (or, on an MD5 mismatch, deletes) the copy the lease's holder stored.
        key = file_key(
            job.provider,
            job.job_id,
            row.position,
            output.get("role") or "file",
            name,
            version=secrets.token_hex(4),
        )
        return _Task(
            id=row.id,
            attempts=row.attempts,
            url=row.url,
            bucket=row.bucket,
            region=row.region,
            object=row.object,
            expected_md5=row.expected_md5,
            key=key,
        )

    def _mirror(self, task: _Task) -> None:
        """Fetch, store and settle one task. Only a stopping worker gives a task back uncounted;
        anything else that fails is a counted attempt, retried after a backoff, so that no
        failure can have the task fetched again at once, over and over."""
        try:
            values, retry_at = self._fetched(task)
        except _Stopping:
            self._give_back(task)
            return
        except Exception as error:
            log.exception("mirror: %s failed unexpectedly", task.key)
            values, retry_at = self._again(task, f"failed unexpectedly: {error}")
        try:
            with self._transaction() as connection:
                settled = settle(
                    connection,
                    FILES,
                    task.id,
                    worker=self._worker,
                    values=values,
                    retry_at=retry_at,
                )
        except Exception:
            # It may have committed: the copy stays, and the lease runs out if it did not.
            log.exception("mirror: settling %s failed; its lease will run out", task.key)
            return
        if not settled:
            log.warning("mirror: %s was not settled; another worker holds it now", task.key)
            if values.get("storage_key") == task.key:
                self._delete_own_copy(task.key)

    def _delete_own_copy(self, key: str) -> None:
        try:
            self._store.delete(key)
        except Exception:
            log.exception("mirror: the copy %s could not be deleted and is left in the store", key)

    def _give_back(self, task: _Task) -> None:
        try:
            with self._transaction() as connection:
                release(connection, FILES, [task.id], worker=self._worker)
        except Exception:
            log.exception("mirror: giving %s back failed; its lease will run out", task.key)

    def _fetched(self, task: _Task) -> tuple[dict[str, Any], datetime | None]:
        """The row's new values, and when to try again (None: never)."""
        try:
            url, headers = self._request(task)
        except ValueError as error:  # a bucket, region or key COS would not have
            return _failed(f"refused: {error}"), None
        try:
            with self._fetcher.open(url, headers) as download:
                stored = self._store.write(task.key, self._until_stopped(download.chunks()))
                content_type = download.content_type
        except _Stopping:
            raise
        except PermanentFetchError as error:
            return _failed(str(error)), None
        except Gone as error:
            if task.attempts > GONE_CONFIRMATIONS:
                return _failed(str(error)), None
            return self._again(task, str(error))
        except Retryable as error:
            return self._again(task, str(error), retry_after_s=error.retry_after_s)
        except FetchError as error:
            return self._again(task, str(error))
        except Exception as error:
            log.exception("mirror: storing %s failed", task.key)
            return self._again(task, f"storing the file failed: {error}")
        return self._verified(task, stored, content_type)

    def _request(self, task: _Task) -> tuple[str, Mapping[str, str]]:
        if task.url is not None:
            return task.url, {}
        if self._cos is None:
            raise ValueError(NO_COS_CREDENTIALS)
        if task.bucket is None or task.region is None or task.object is None:
            raise ValueError(NO_BUCKET)
        # Queued before STEMHOOK_COS_BUCKETS changed, perhaps: checked again when fetched.
        if not may_read(self._cos_buckets, task.bucket, task.region):
            raise ValueError(BUCKET_NOT_ALLOWED)
        return signed_get(
            task.bucket,
            task.region,
            task.object,
            secret_id=self._cos.secret_id,
            secret_key=self._cos.secret_key,
            now=int(self._clock().timestamp()),
        )

    def _verified(
        self, task: _Task, stored: StoredFile, content_type: str | None
    ) -> tuple[dict[str, Any], datetime | None]:
        md5_verified = None
        if task.expected_md5 is not None:
            md5_verified = stored.md5 == task.expected_md5.strip().lower()
            if not md5_verified:
                self._delete_own_copy(task.key)
                return _failed(
                    f"md5 mismatch: the callback says {task.expected_md5!r}, the file's is"
                    f" {stored.md5}"
                ) | {"md5_verified": False}, None
        return {
            "status": FileStatus.STORED.value,
            "bytes": stored.size,
            "sha256": stored.sha256,
            "md5": stored.md5,
            "md5_verified": md5_verified,
            "content_type": content_type,
            "stored_at": self._clock(),
            "storage_key": stored.key,
            "error": None,
        }, None

    def _again(
        self, task: _Task, error: str, *, retry_after_s: float | None = None
    ) -> tuple[dict[str, Any], datetime | None]:
        if task.attempts >= self._options.max_attempts:
            return _failed(f"gave up after {task.attempts} attempts: {error}"), None
        wait_for = backoff(
            task.attempts, base=self._options.retry_base, cap=self._options.retry_cap
        )
        if retry_after_s is not None and math.isfinite(retry_after_s):
            asked = timedelta(seconds=min(retry_after_s, MAX_RETRY_AFTER.total_seconds()))
            wait_for = max(wait_for, asked)
        return {"error": error}, self._clock() + wait_for

    def _until_stopped(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            if self._stop.is_set():
                raise _Stopping
            yield chunk

    def _renew(self, task_ids: list[int]) -> None:
        with self._transaction() as connection:
            until = self._clock() + self._options.lease
            renew(connection, FILES, task_ids, worker=self._worker, until=until)

    def _transaction(self) -> contextlib.AbstractContextManager[Connection]:
        return turn_transaction(self._engine, self._turns, wait_s=_TURN_S)


def _jobs_of(connection: Connection, job_pks: set[int]) -> dict[int, Any]:
    job = models.Job
    rows = connection.execute(
        select(job.id, job.provider, job.job_id, job.outputs).where(job.id.in_(job_pks))
    )
    return {row.id: row for row in rows}


def _failed(error: str) -> dict[str, Any]:
    return {"status": FileStatus.FAILED.value, "error": error}

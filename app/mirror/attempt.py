"""One attempt at one queued file: fetch it through the address guard (app/fetching/), stream it
into the file store (app/storage/), and say what its row becomes. No database here: the worker
(app/mirror/worker.py) claims the task before and settles the outcome after.

What becomes of a failure (the fetcher's classes, app/fetching/errors.py):
- refused, too large, encoded, another status: failed at once, the error says why;
- 403, 404, 410 (gone): failed after one confirmation retry;
- no answer in time, a broken connection, 429, 5xx, a store that failed, anything unexpected:
  retried with backoff (the server's Retry-After when longer, up to an hour), failed after
  `max_attempts`;
- an MD5 the callback gave that the stored bytes do not have: failed, this attempt's copy removed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app.fetching.errors import FetchError, Gone, PermanentFetchError, Retryable, retry_wait
from app.fetching.fetcher import Download, Fetcher
from app.ingest.in_flight import WritesInFlight
from app.mirror.cos import CosKeys, signed_get
from app.mirror.sources import (
    BUCKET_NOT_ALLOWED,
    NO_BUCKET,
    NO_COS_CREDENTIALS,
    CosBucket,
    FileStatus,
    may_read,
)
from app.storage.store import FileStore, StoredFile
from app.work.queue import backoff

log = logging.getLogger(__name__)
GONE_CONFIRMATIONS = 1


@dataclass(frozen=True, slots=True)
class Task:
    """A claimed file: its row, where it comes from, and the key this attempt writes."""

    id: int
    attempts: int
    # A URL to GET, or an object in a COS bucket (signed when fetched: signatures expire).
    url: str | None
    bucket: str | None
    region: str | None
    object: str | None
    expected_md5: str | None
    key: str


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the task's row becomes: `values` written and due again at `retry_at` (never, when
    None); or, when `values` is None, given back untouched (the worker was stopping)."""

    task: Task
    values: dict[str, Any] | None
    retry_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Retries:
    max_attempts: int
    base: timedelta
    cap: timedelta


class _Stopping(Exception):
    """The worker is stopping: the fetch is abandoned, its task given back."""


class Attempts:
    """Fetches and stores claimed files, on any number of threads at once."""

    def __init__(
        self,
        *,
        fetcher: Fetcher,
        store: FileStore,
        retries: Retries,
        stop: threading.Event,
        clock: Callable[[], datetime],
        cos: CosKeys | None = None,
        cos_buckets: frozenset[CosBucket] = frozenset(),
        in_flight: WritesInFlight | None = None,
    ) -> None:
        """`in_flight`: the web process's writes, between which each piece of a file is read."""
        self._writes = WritesInFlight() if in_flight is None else in_flight
        self._fetcher = fetcher
        self._store = store
        self._retries = retries
        self._stop = stop
        self._clock = clock
        self._cos = cos
        self._cos_buckets = cos_buckets

    def outcome(self, task: Task) -> Outcome:
        """Only a stopping worker gives a task back uncounted; anything else that fails is a
        counted attempt, retried after a backoff, so that no failure can have the task fetched
        again at once, over and over."""
        try:
            values, retry_at = self._fetched(task)
        except _Stopping:
            return Outcome(task, None)
        except Exception as error:
            log.exception("mirror: %s failed unexpectedly", task.key)
            values, retry_at = self._again(task, f"failed unexpectedly: {error}")
        return Outcome(task, values, retry_at)

    def delete_own_copy(self, key: str) -> None:
        try:
            self._store.delete(key)
        except Exception:
            log.exception("mirror: the copy %s could not be deleted and is left in the store", key)

    def _fetched(self, task: Task) -> tuple[dict[str, Any], datetime | None]:
        """The row's new values, and when to try again (None: never)."""
        try:
            url, headers = self._request(task)
        except ValueError as error:  # a bucket, region or key COS would not have
            return _failed(f"refused: {error}"), None
        try:
            with self._fetcher.open(url, headers) as download:
                stored = self._store.write(task.key, self._until_stopped(download))
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

    def _request(self, task: Task) -> tuple[str, Mapping[str, str]]:
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
        self, task: Task, stored: StoredFile, content_type: str | None
    ) -> tuple[dict[str, Any], datetime | None]:
        md5_verified = None
        if task.expected_md5 is not None:
            md5_verified = stored.md5 == task.expected_md5.strip().lower()
            if not md5_verified:
                self.delete_own_copy(task.key)
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
        self, task: Task, error: str, *, retry_after_s: float | None = None
    ) -> tuple[dict[str, Any], datetime | None]:
        if task.attempts >= self._retries.max_attempts:
            return _failed(f"gave up after {task.attempts} attempts: {error}"), None
        wait_for = backoff(task.attempts, base=self._retries.base, cap=self._retries.cap)
        return {"error": error}, self._clock() + retry_wait(wait_for, retry_after_s)

    def _until_stopped(self, download: Download) -> Iterator[bytes]:
        """The download's chunks, each read once no write is awaited (or after a second's wait,
        which its deadline does not count)."""
        chunks = download.chunks()
        while True:
            with download.paused():
                self._writes.wait_for_none(self._stop)
            if self._stop.is_set():
                raise _Stopping
            chunk = next(chunks, None)
            if chunk is None:
                return
            yield chunk


def _failed(error: str) -> dict[str, Any]:
    return {"status": FileStatus.FAILED.value, "error": error}

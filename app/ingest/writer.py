"""The one owner of write transactions: a thread that commits deliveries in groups.

Request handlers hand their intake to `Writer.write` and wait. The writer thread takes every
intake that is waiting, stores them all in one transaction, commits once, and only then
answers each waiting handler. Under load many deliveries share one commit (and one fsync on
SQLite), so durability does not cost a commit per request; when idle a batch is one delivery
and nothing waits for a timer.

Failures:
- the database cannot take the write (unreachable, locked, read-only, shutting down): the whole
  batch answers StorageUnavailable (503) so that providers retry;
- a batch fails on its data: each delivery is retried in a transaction of its own, so one
  poisoned delivery cannot fail its neighbours; the one the database still refuses is kept raw
  as an *orphaned* delivery (400 with its id), replayable once the cause is fixed;
- a transaction hangs on a server that stopped answering: a watchdog interrupts its connection
  once it outlives the write timeout, and the writer carries on with a fresh one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine

from app.db import interrupt, is_unavailable
from app.errors import StorageUnavailable
from app.ingest.driver import Cursor
from app.ingest.intake import Intake, Outcome, Receipt
from app.ingest.statements import WriteStatements, build_statements
from app.ingest.store import keep_raw, store_batch

log = logging.getLogger(__name__)
T = TypeVar("T")

# One transaction holds its bodies in memory until it commits.
MAX_BATCH_BYTES = 32 * 1024 * 1024
UNAVAILABLE = "the database cannot take the write now; retry later"


@dataclass(frozen=True, slots=True)
class _Pending:
    intake: Intake
    future: asyncio.Future[Receipt]
    # Set by the handler that stopped waiting (it answered 503); read by the writer thread.
    abandoned: threading.Event = field(default_factory=threading.Event)


Settled = list[tuple[asyncio.Future[Receipt], Receipt | BaseException]]


def _settle_all(settled: Settled) -> None:
    for future, outcome in settled:
        if future.done():  # the handler gave up (timeout) meanwhile
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


class Writer:
    def __init__(self, engine: Engine, *, max_batch: int, timeout_s: float) -> None:
        self._engine = engine
        self._sql: WriteStatements = build_statements(engine.dialect)
        self._max_batch = max_batch
        self._timeout_s = timeout_s
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="stemhook-writer", daemon=True)
        self._watchdog = _Watchdog(stall_after_s=timeout_s + 1)

    def start(self) -> None:
        """Start writing; answers go to the event loop this is called on."""
        self._loop = asyncio.get_running_loop()
        self._thread.start()
        self._watchdog.start()

    async def stop(self) -> None:
        """Write what is queued, then stop; a writer stuck past the timeout is left behind."""
        self._queue.put(None)
        await asyncio.to_thread(self._thread.join, self._timeout_s * 2)
        self._watchdog.stop()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    async def write(self, intake: Intake) -> Receipt:
        """Store the intake; returns once it is committed, or raises StorageUnavailable."""
        pending = _Pending(intake, self._loop.create_future())
        self._queue.put(pending)
        try:
            return await asyncio.wait_for(pending.future, self._timeout_s)
        except TimeoutError:
            # Best effort: a write already under way may still land, and then the provider's
            # retry is answered as a duplicate; nothing acknowledged is lost either way.
            pending.abandoned.set()
            raise StorageUnavailable(UNAVAILABLE) from None

    def _run(self) -> None:
        while True:
            batch, stopping = self._take_batch()
            self._write_batch([pending for pending in batch if not pending.abandoned.is_set()])
            if stopping:
                return

    def _take_batch(self) -> tuple[list[_Pending], bool]:
        first = self._queue.get()
        if first is None:
            return [], True
        batch, size = [first], len(first.intake.arrival.body)
        while len(batch) < self._max_batch and size < MAX_BATCH_BYTES:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                return batch, True
            batch.append(item)
            size += len(item.intake.arrival.body)
        return batch, False

    def _write_batch(self, batch: list[_Pending]) -> None:
        if batch:
            outcomes = self._outcomes(batch)
            self._settle([(p.future, o) for p, o in zip(batch, outcomes, strict=True)])

    def _settle(self, settled: Settled) -> None:
        # One wake-up of the event loop for the whole batch. A closed loop means the process is
        # shutting down and nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(_settle_all, settled)

    def _outcomes(self, batch: list[_Pending]) -> list[Receipt | BaseException]:
        try:
            intakes = [pending.intake for pending in batch]
            receipts = self._transaction(lambda cursor: store_batch(cursor, self._sql, intakes))
        except Exception as exc:
            if is_unavailable(exc):
                log.warning("database unavailable for %d deliveries: %s", len(batch), exc)
                return [StorageUnavailable(UNAVAILABLE) for _ in batch]
            if len(batch) > 1:
                return [outcome for pending in batch for outcome in self._outcomes([pending])]
            return [self._keep_orphaned(batch[0], exc)]
        return list(receipts)

    def _keep_orphaned(self, pending: _Pending, cause: Exception) -> Receipt | BaseException:
        log.error("the database refused a delivery's jobs; keeping it raw", exc_info=cause)
        reason = f"the database refused the delivery's jobs: {type(cause).__name__}"
        try:
            return self._transaction(
                lambda cursor: keep_raw(cursor, self._sql, pending.intake, Outcome.ORPHANED, reason)
            )
        except Exception as exc:
            log.exception("delivery could not be stored at all")
            return StorageUnavailable(UNAVAILABLE) if is_unavailable(exc) else exc

    def _transaction(self, work: Callable[[Cursor], T]) -> T:
        with self._engine.begin() as connection, self._watchdog.watching(connection):
            cursor = Cursor(connection.connection.dbapi_connection)
            try:
                if self._sql.lock_writers is not None:
                    cursor.run(self._sql.lock_writers, {})
                return work(cursor)
            finally:
                cursor.close()


class _Watchdog:
    """Interrupts the connection of a transaction that outlives its deadline."""

    def __init__(self, *, stall_after_s: float) -> None:
        self._stall_after_s = stall_after_s
        self._lock = threading.Lock()
        self._watched: tuple[float, Any] | None = None
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stemhook-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()

    @contextlib.contextmanager
    def watching(self, connection: Connection) -> Iterator[None]:
        with self._lock:
            self._watched = (time.monotonic(), connection.connection.dbapi_connection)
        try:
            yield
        finally:
            with self._lock:
                self._watched = None

    def _run(self) -> None:
        while not self._stopped.wait(self._stall_after_s / 4):
            stalled = self._take_stalled()
            if stalled is not None:
                log.error("write transaction stalled for %.1f s; interrupting", self._stall_after_s)
                interrupt(stalled)

    def _take_stalled(self) -> Any:
        """The connection of a transaction past its deadline, once per stall period."""
        with self._lock:
            if self._watched is None:
                return None
            since, dbapi_connection = self._watched
            now = time.monotonic()
            if now - since <= self._stall_after_s:
                return None
            self._watched = (now, dbapi_connection)
            return dbapi_connection

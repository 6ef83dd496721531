"""The one owner of write transactions: a thread that commits deliveries in groups.

Request handlers hand their intake to `Writer.write` and wait. The writer thread takes every
intake that is waiting, stores them all in one transaction, commits once, and only then
answers each waiting handler. Under load many deliveries share one commit (and one fsync on
SQLite), so durability does not cost a commit per request; when idle a batch is one delivery
and nothing waits for a timer.

A batch that fails on a data problem is retried one delivery per transaction, so one poisoned
delivery cannot fail its neighbours; a database that is unreachable or locked fails the whole
batch with StorageUnavailable (503) so that providers retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from app.errors import StorageUnavailable
from app.ingest.intake import Intake, Receipt
from app.ingest.statements import WriteStatements, build_statements
from app.ingest.store import store

log = logging.getLogger(__name__)

# PostgreSQL's deadlock_detected and serialization_failure: the transaction may simply be rerun.
_RERUN_SQLSTATES = frozenset({"40P01", "40001"})
_RERUNS = 3


@dataclass(frozen=True, slots=True)
class _Pending:
    intake: Intake
    future: asyncio.Future[Receipt]
    loop: asyncio.AbstractEventLoop

    def settle(self, outcome: Receipt | BaseException) -> None:
        # A closed loop means the process is shutting down and nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(_settle, self.future, outcome)


def _settle(future: asyncio.Future[Receipt], outcome: Receipt | BaseException) -> None:
    if future.done():  # the handler gave up (timeout) meanwhile
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


class Writer:
    def __init__(self, engine: Engine, *, max_batch: int) -> None:
        self._engine = engine
        self._sql: WriteStatements = build_statements(engine.dialect.name)
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="stemhook-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    async def stop(self) -> None:
        self._queue.put(None)
        await asyncio.to_thread(self._thread.join)

    async def write(self, intake: Intake, *, timeout: float) -> Receipt:
        """Store the intake; returns once it is committed, or raises StorageUnavailable."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Receipt] = loop.create_future()
        self._queue.put(_Pending(intake, future, loop))
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            # If the write still lands later, the provider's retry is answered as a duplicate.
            raise StorageUnavailable(
                f"the database did not take the write within {timeout:g} s"
            ) from None

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stopping = False
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            # A handler that already answered 503 must not be written behind its back.
            self._write_batch([pending for pending in batch if not pending.future.done()])
            if stopping:
                return

    def _write_batch(self, batch: list[_Pending]) -> None:
        if not batch:
            return
        try:
            receipts = self._transaction(batch)
        except OperationalError as exc:
            log.warning("database unavailable for %d deliveries: %s", len(batch), exc.orig)
            for pending in batch:
                pending.settle(StorageUnavailable(f"database unavailable: {exc.orig}"))
            return
        except Exception as exc:
            if len(batch) > 1:
                for pending in batch:
                    self._write_batch([pending])
                return
            log.exception("delivery could not be stored")
            batch[0].settle(exc)
            return
        for pending, receipt in zip(batch, receipts, strict=True):
            pending.settle(receipt)

    def _transaction(self, batch: list[_Pending]) -> list[Receipt]:
        attempt = 1
        while True:
            try:
                with self._engine.begin() as connection:
                    return [store(connection, self._sql, pending.intake) for pending in batch]
            except DBAPIError as exc:
                rerun = getattr(exc.orig, "sqlstate", None) in _RERUN_SQLSTATES
                if not rerun or attempt == _RERUNS:
                    raise
                attempt += 1

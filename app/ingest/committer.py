"""Commits submissions in groups, in the writer process: the one owner of write transactions.

The writer process (app/ingest/writer_process.py) takes its turn among the writers of other
workers (turn()), then hands over half of the submissions waiting (all, if it had to wait); they
are admitted (parsed), stored in one transaction and committed once, and only then is each
answered. Under load many deliveries share one commit (and one fsync on SQLite), so durability
does not cost a commit per request; when idle a batch is one delivery and nothing waits.

Failures:
- the database cannot take the write (unreachable, locked, read-only, shutting down): the whole
  batch answers StorageUnavailable (503) so that providers retry;
- a batch fails on its data: each delivery is retried in a transaction of its own, so one
  poisoned delivery cannot fail its neighbours; the one the database still refuses is kept raw
  as an *orphaned* delivery (400 with its id), replayable once the cause is fixed;
- a transaction hangs on a server that stopped answering: a watchdog interrupts its connection
  once it outlives the write timeout, and the committer carries on with a fresh one.

A commit slower than SLOW_COMMIT_S is logged as a warning with its duration (`commit_ms`): every
delivery waiting behind it is answered that much later, and the cause lies where stemhook cannot
see, usually in the disk's flush (SQLite) or the database server.

Answers are receipts (sent as plain values) or exceptions the web process can rebuild (pickled):
StorageUnavailable, BadSignature, or a RuntimeError naming anything unexpected.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine

from app.db import interrupt, is_unavailable
from app.errors import StorageUnavailable
from app.ingest.admission import BadSignature, admit
from app.ingest.driver import Cursor
from app.ingest.intake import Intake, Outcome, Receipt, ReceiptWire, Submission
from app.ingest.statements import WriteStatements, build_statements
from app.ingest.store import keep_raw, store_batch
from app.ingest.turns import Turn, writer_turns

log = logging.getLogger(__name__)
T = TypeVar("T")

UNAVAILABLE = "the database cannot take the write now; retry later"
# The service's latency target (p99 under 50 ms, BENCHMARKS.md): one commit this slow misses it
# for the deliveries in its batch and those waiting behind it.
SLOW_COMMIT_S = 0.05
Answer = Receipt | BaseException


def answer_to_wire(answer: Answer) -> ReceiptWire | BaseException:
    return answer if isinstance(answer, BaseException) else answer.to_wire()


def answer_from_wire(sent: ReceiptWire | BaseException) -> Answer:
    return sent if isinstance(sent, BaseException) else Receipt.from_wire(sent)


class Committer:
    def __init__(self, engine: Engine, *, suno_key: str | None, timeout_s: float) -> None:
        self._engine = engine
        self._sql: WriteStatements = build_statements(engine.dialect)
        self._suno_key = suno_key
        self._turns = writer_turns(engine)
        # Kept from one transaction to the next while they succeed: a checkout, the pool's
        # rollback on return and a fresh Connection for every batch cost ~10 % of the writer's
        # Python time under load. A failed transaction's connection is discarded.
        self._connection: Connection | None = None
        self._watchdog = _Watchdog(stall_after_s=timeout_s + 1)
        self._watchdog.start()

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
        self._watchdog.stop()
        self._turns.close()

    def turn(self, *, until: float) -> contextlib.AbstractContextManager[Turn]:
        """This writer's turn at the database among the writer processes of other workers (on
        SQLite; app/ingest/turns.py). Taken before the batch is chosen, so that what arrives
        while another writer commits joins the batch rather than waiting for the next one."""
        return self._turns.taken(until=until)

    def commit(self, submissions: list[Submission]) -> list[Answer]:
        """Each submission's answer, in order, once everything storable is committed."""
        answers: dict[int, Answer] = {}
        admitted: list[tuple[int, Intake]] = []
        for index, submission in enumerate(submissions):
            try:
                admitted.append((index, admit(submission, suno_key=self._suno_key)))
            except BadSignature as exc:
                answers[index] = exc
            except Exception as exc:  # a bug outside parsing: answer 500, keep the others going
                log.exception("admitting a delivery failed")
                answers[index] = _unexpected(exc)
        stored = self._outcomes([intake for _, intake in admitted]) if admitted else []
        for (index, _), answer in zip(admitted, stored, strict=True):
            answers[index] = answer
        return [answers[index] for index in range(len(submissions))]

    def _outcomes(self, intakes: list[Intake]) -> list[Answer]:
        try:
            return list(
                self._transaction(
                    lambda cursor: store_batch(cursor, self._sql, intakes), deliveries=len(intakes)
                )
            )
        except Exception as exc:
            if is_unavailable(exc):
                log.warning("database unavailable for %d deliveries: %s", len(intakes), exc)
                return [StorageUnavailable(UNAVAILABLE) for _ in intakes]
            if len(intakes) > 1:
                return [outcome for intake in intakes for outcome in self._outcomes([intake])]
            return [self._keep_orphaned(intakes[0], exc)]

    def _keep_orphaned(self, intake: Intake, cause: Exception) -> Answer:
        log.error("the database refused a delivery's jobs; keeping it raw", exc_info=cause)
        reason = f"the database refused the delivery's jobs: {type(cause).__name__}"
        try:
            return self._transaction(
                lambda cursor: keep_raw(cursor, self._sql, intake, Outcome.ORPHANED, reason),
                deliveries=1,
            )
        except Exception as exc:
            log.exception("delivery could not be stored at all")
            return StorageUnavailable(UNAVAILABLE) if is_unavailable(exc) else _unexpected(exc)

    def _transaction(self, work: Callable[[Cursor], T], *, deliveries: int) -> T:
        connection, self._connection = self._connection or self._engine.connect(), None
        try:
            # The watchdog covers the COMMIT (or ROLLBACK) too: a server can hang on it as well.
            with self._watchdog.watching(connection):
                with connection.begin():
                    cursor = Cursor(connection)
                    try:
                        if self._sql.lock_writers is not None:
                            cursor.run(self._sql.lock_writers, {})
                        result = work(cursor)
                    finally:
                        cursor.close()
                    stored = time.monotonic()
                committed = time.monotonic()
        except BaseException:
            connection.close()
            raise
        self._connection = connection
        if committed - stored > SLOW_COMMIT_S:
            commit_ms = round((committed - stored) * 1000, 1)
            log.warning(
                "committing %d deliveries took %.0f ms",
                deliveries,
                commit_ms,
                extra={"commit_ms": commit_ms, "deliveries": deliveries},
            )
        return result


def _unexpected(exc: Exception) -> RuntimeError:
    # Driver exceptions do not all survive pickling; their text does.
    return RuntimeError(f"{type(exc).__name__}: {exc}")


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

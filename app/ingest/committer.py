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
- a transaction outlives its time (half of what is left until the earliest delivery still awaited
  gives up, so that what remains can still be stored in time; the last one alone gets until its own
  deadline): the server cancels its statement (PostgreSQL's statement_timeout, set for the
  transaction's later statements) or a watchdog interrupts its connection (a server that stopped
  answering), and its deliveries are tried again in halves, so that a heavy delivery fails alone
  (503) and its neighbours commit. A part whose senders have all given up is answered 503 without
  being tried. One interrupted in its COMMIT is not tried again (it may have been committed) and
  answers 503, as an unavailable database does. The server-side cut is not exact (a timeout set
  inside the transaction covers only the statements after it), so the watchdog is what bounds an
  attempt.

A transaction writes at most MAX_TRANSACTION_JOBS job rows (on PostgreSQL, whose transactions
lock each job they write, POSTGRESQL_MAX_JOBS_PER_TRANSACTION): a batch listing more is stored in
several, one after another. Each part is answered as soon as it is decided (commit() yields its
answers), so that what committed early does not wait for a heavy part behind it.

A commit slower than SLOW_COMMIT_S is logged as a warning with its duration (`commit_ms`): every
delivery waiting behind it is answered that much later, and the cause lies where stemhook cannot
see, usually in the disk's flush (SQLite) or the database server.

Answers are receipts (sent as plain values) or exceptions the web process can rebuild (pickled):
StorageUnavailable, BadSignature, or a RuntimeError naming anything unexpected.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import chain
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine

from app.config import POSTGRESQL_MAX_JOBS_PER_TRANSACTION, Settings
from app.db import interrupt, is_unavailable
from app.errors import StorageUnavailable
from app.ingest.admission import BadSignature, admit
from app.ingest.driver import Cursor
from app.ingest.intake import Intake, Outcome, Receipt, ReceiptWire, Submission
from app.ingest.statements import WriteStatements, build_statements
from app.ingest.store import begin, keep_raw, store_batch
from app.ingest.turns import Turn, writer_turns
from app.mirror.sources import MirrorPolicy
from app.polling.watches import WatchPolicy
from app.providers.model import Provider

log = logging.getLogger(__name__)
T = TypeVar("T")

UNAVAILABLE = "the database cannot take the write now; retry later"
# The service's latency target (p99 under 50 ms, BENCHMARKS.md): one commit this slow misses it
# for the deliveries in its batch and those waiting behind it.
SLOW_COMMIT_S = 0.05
# At ~47 us a job row (30,000 took 1.4 s), about 50 ms of writing: a transaction this big keeps
# the deliveries behind it within the latency target.
MAX_TRANSACTION_JOBS = 1000
# PostgreSQL's errors for a statement cancelled by statement_timeout, or a lock wait cut short.
_TIMED_OUT_SQLSTATES = frozenset({"57014", "55P03"})
# A watchdog's interrupt can fall between two statements and be lost: it is sent again.
_INTERRUPT_AGAIN_S = 0.1
Answer = Receipt | BaseException


def answer_to_wire(answer: Answer) -> ReceiptWire | BaseException:
    return answer if isinstance(answer, BaseException) else answer.to_wire()


def answer_from_wire(sent: ReceiptWire | BaseException) -> Answer:
    return sent if isinstance(sent, BaseException) else Receipt.from_wire(sent)


@dataclass(frozen=True, slots=True)
class _Pending:
    """An admitted delivery waiting to be stored: its place in the batch and its deadline."""

    index: int
    intake: Intake
    deadline: float


class _TimedOut(Exception):
    """The transaction outlived its time before its COMMIT: it was rolled back."""


class Committer:
    def __init__(
        self,
        engine: Engine,
        *,
        suno_key: str | None,
        timeout_s: float,
        max_jobs: int,
        mirror: MirrorPolicy,
        watch: WatchPolicy,
        confirm: frozenset[Provider] = frozenset(),
    ) -> None:
        """`confirm`: the providers whose unsigned callbacks' final states wait for their own
        word (STEMHOOK_CONFIRM_BY_POLL)."""
        self._engine = engine
        self._mirror = mirror
        self._watch = watch
        self._confirm = confirm
        self._sql: WriteStatements = build_statements(engine.dialect)
        self._suno_key = suno_key
        self._max_jobs = max_jobs
        self._postgresql = engine.dialect.name == "postgresql"
        # The least a transaction is given, however close its deadlines: less would interrupt
        # healthy batches under a backlog and waste the work.
        self._min_attempt_s = timeout_s / 8
        self._turns = writer_turns(engine)
        # Kept from one transaction to the next while they succeed: a checkout, the pool's
        # rollback on return and a fresh Connection for every batch cost ~10 % of the writer's
        # Python time under load. A failed transaction's connection is discarded.
        self._connection: Connection | None = None
        self._watchdog = _Watchdog()
        self._watchdog.start()

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
        self._watchdog.stop()
        self._turns.close()

    def turn(
        self, *, until: float, patient: bool = False
    ) -> contextlib.AbstractContextManager[Turn]:
        """This writer's turn at the database among the writer processes of other workers (on
        SQLite; app/ingest/turns.py). Taken before the batch is chosen, so that what arrives
        while another writer commits joins the batch rather than waiting for the next one;
        `patient`: by background work (turns.py)."""
        return self._turns.taken(until=until, patient=patient)

    def commit(
        self, submissions: list[Submission], *, deadlines: list[float]
    ) -> Iterator[list[tuple[int, Answer]]]:
        """The submissions' answers as (index, answer), group by group as each is decided: a part
        committed early is answered without waiting for a heavy one behind it. `deadlines`: when
        each one's sender stops waiting (time.monotonic())."""
        refused: list[tuple[int, Answer]] = []
        admitted: list[_Pending] = []
        for index, (submission, deadline) in enumerate(zip(submissions, deadlines, strict=True)):
            try:
                intake = admit(
                    submission,
                    suno_key=self._suno_key,
                    max_jobs=self._max_jobs,
                    confirm=self._confirm,
                )
            except BadSignature as exc:
                refused.append((index, exc))
            except Exception as exc:  # a bug outside parsing: answer 500, keep the others going
                log.exception("admitting a delivery failed")
                refused.append((index, _unexpected(exc)))
            else:
                admitted.append(_Pending(index, intake, deadline))
        if refused:
            yield refused
        yield from self._stored(admitted)

    def _stored(self, admitted: list[_Pending]) -> Iterator[list[tuple[int, Answer]]]:
        """Each delivery's answer, committed in parts (see the module's docstring): each part
        is answered once, by its commit or by its failure, never both."""
        parts = deque(_by_jobs(admitted, self._max_jobs_per_transaction))
        unavailable = False
        while parts:
            part = parts.popleft()
            now = time.monotonic()
            if unavailable or max(pending.deadline for pending in part) <= now:
                yield [(pending.index, StorageUnavailable(UNAVAILABLE)) for pending in part]
                continue
            try:
                stored = self._transaction(
                    partial(self._store, [pending.intake for pending in part]),
                    deliveries=len(part),
                    until=self._attempt_until(part, parts, now),
                )
            except _TimedOut:
                log.warning("a write of %d deliveries outlived its time", len(part))
                if len(part) > 1:
                    half = len(part) // 2
                    parts.extendleft([part[half:], part[:half]])
                else:
                    yield [(part[0].index, StorageUnavailable(UNAVAILABLE))]
            except Exception as exc:
                if is_unavailable(exc):
                    log.warning("database unavailable for %d deliveries: %s", len(part), exc)
                    unavailable = True
                    parts.appendleft(part)
                elif len(part) > 1:  # one of them is refused: each in a transaction of its own
                    parts.extendleft([pending] for pending in reversed(part))
                else:
                    yield [(part[0].index, self._keep_orphaned(part[0], exc))]
            else:
                yield list(zip([pending.index for pending in part], stored, strict=True))

    @property
    def _max_jobs_per_transaction(self) -> int:
        if self._postgresql:
            return min(MAX_TRANSACTION_JOBS, POSTGRESQL_MAX_JOBS_PER_TRANSACTION)
        return MAX_TRANSACTION_JOBS

    def _store(self, intakes: list[Intake], cursor: Cursor, tx: int) -> list[Receipt]:
        return store_batch(
            cursor,
            self._sql,
            intakes,
            tx=tx,
            mirror=self._mirror,
            watch=self._watch,
            confirm=self._confirm,
        )

    def _attempt_until(
        self, part: Sequence[_Pending], rest: deque[list[_Pending]], now: float
    ) -> float:
        """Half the time left until the earliest sender still waiting gives up, so that what a
        heavy part leaves behind can still be stored in time; the last delivery, alone, gets
        until its own deadline."""
        if len(part) == 1 and not rest:
            return max(part[0].deadline, now + self._min_attempt_s)
        deadlines = (pending.deadline for pending in chain(part, *rest))
        earliest = min((deadline for deadline in deadlines if deadline > now), default=now)
        return now + max((earliest - now) / 2, self._min_attempt_s)

    def _keep_orphaned(self, pending: _Pending, cause: Exception) -> Answer:
        log.error("the database refused a delivery's jobs; keeping it raw", exc_info=cause)
        reason = f"the database refused the delivery's jobs: {type(cause).__name__}"
        try:
            return self._transaction(
                lambda cursor, tx: keep_raw(
                    cursor, self._sql, pending.intake, Outcome.ORPHANED, reason, tx=tx
                ),
                deliveries=1,
                until=max(pending.deadline, time.monotonic() + self._min_attempt_s),
            )
        except Exception as exc:
            log.exception("delivery could not be stored at all")
            if is_unavailable(exc) or isinstance(exc, _TimedOut):
                return StorageUnavailable(UNAVAILABLE)
            return _unexpected(exc)

    def _transaction(self, work: Callable[[Cursor, int], T], *, deliveries: int, until: float) -> T:
        """`work` committed, or _TimedOut if it was still running at `until` (rolled back).
        `work` gets the cursor and the transaction's number (statements.py)."""
        connection, self._connection = self._connection or self._engine.connect(), None
        watch = _Watch(until, connection.connection.dbapi_connection)
        committing = False
        try:
            # The watchdog covers the COMMIT (or ROLLBACK) too: a server can hang on it as well.
            with self._watchdog.watching(watch), connection.begin():
                cursor = Cursor(connection)
                try:
                    left_ms = max(1, int((until - time.monotonic()) * 1000))
                    tx = begin(cursor, self._sql, timeout_ms=left_ms)
                    result = work(cursor, tx)
                finally:
                    cursor.close()
                stored = time.monotonic()
                committing = True
            committed = time.monotonic()
        except Exception as exc:
            connection.close()
            if not committing and (watch.interrupted or _timed_out(exc)):
                raise _TimedOut from exc
            raise
        except BaseException:
            connection.close()
            raise
        if watch.interrupted:  # the watchdog's deadline fell just after the COMMIT returned
            connection.invalidate()  # not back to the pool: its socket may be shut down
            connection.close()
        else:
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


def committer_for(engine: Engine, settings: Settings) -> Committer:
    """The committer the settings describe: the writer process's, and the poller's."""
    key = settings.suno_hmac_key.get_secret_value() if settings.suno_hmac_key else None
    return Committer(
        engine,
        suno_key=key,
        timeout_s=settings.write_timeout_s,
        max_jobs=settings.max_jobs_per_delivery,
        mirror=settings.mirror_policy,
        watch=settings.watch_policy,
        confirm=settings.confirmed_providers,
    )


def _by_jobs(admitted: list[_Pending], most: int) -> Iterator[list[_Pending]]:
    """The deliveries in order, in parts of at most `most` jobs (a delivery with more, allowed by
    STEMHOOK_MAX_JOBS_PER_DELIVERY, is a part of its own)."""
    part: list[_Pending] = []
    jobs = 0
    for pending in admitted:
        size = len(pending.intake.jobs) + len(pending.intake.held)
        if part and jobs + size > most:
            yield part
            part, jobs = [], 0
        part.append(pending)
        jobs += size
    if part:
        yield part


def _timed_out(exc: BaseException) -> bool:
    original = getattr(exc, "orig", exc)
    return getattr(original, "sqlstate", None) in _TIMED_OUT_SQLSTATES


def _unexpected(exc: Exception) -> RuntimeError:
    # Driver exceptions do not all survive pickling; their text does.
    return RuntimeError(f"{type(exc).__name__}: {exc}")


@dataclass(slots=True)
class _Watch:
    """One transaction under the watchdog: its connection is interrupted from `until` on."""

    until: float
    dbapi_connection: Any
    interrupted: bool = False


class _Watchdog:
    """Interrupts the connection of a transaction that outlives its time."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._watched: _Watch | None = None
        # When the thread looks again by itself: a transaction due later needs no wake-up, so
        # under load it wakes once per time allowed, not once per batch.
        self._wakes_at = math.inf
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="stemhook-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._condition:
            self._stopped = True
            self._condition.notify()

    @contextlib.contextmanager
    def watching(self, watch: _Watch) -> Iterator[None]:
        with self._condition:
            self._watched = watch
            if watch.until < self._wakes_at:
                self._condition.notify()
        try:
            yield
        finally:
            with self._condition:
                self._watched = None

    def _run(self) -> None:
        with self._condition:
            while not self._stopped:
                watch = self._watched
                if watch is None:
                    self._wakes_at = math.inf
                    self._condition.wait()
                    continue
                left = watch.until - time.monotonic()
                if left > 0:
                    self._wakes_at = watch.until
                    self._condition.wait(left)
                    continue
                if not watch.interrupted:
                    log.warning("a write transaction outlived its time; interrupting it")
                watch.interrupted = True
                watch.until += _INTERRUPT_AGAIN_S
                try:
                    interrupt(watch.dbapi_connection)
                except Exception:  # this thread must live on to watch the next transaction
                    log.exception("interrupting a write transaction failed")

"""Polling: the worker that claims due watches (job_watch rows), asks each job's provider about it
on threads of its own, stores each answer as a delivery through the write path
(app/polling/answers.py), and settles the watch (app/polling/schedule.py).

Each configured provider has STEMHOOK_POLL_CONCURRENCY places of its own, and the worker claims
a provider's watches only for its free places: a provider that is slow or never answers holds up
its own polls, never another's. An answer (any 2xx) is stored raw as a delivery on the poll
endpoint of its provider (`poll/<provider>`), parsed and merged by the `Committer` this worker
owns exactly like a callback, so a poll's success queues the job's files and ends its watch in
the same transaction; its request, which carries the credentials, is never stored. The watch is
settled after: a settle refused means the job became final meanwhile (by this poll's own
delivery, whose poll is then counted on the ended watch, or by a callback), and it stays done.

Like the mirror (app/mirror/worker.py), the worker's own thread alone writes, one transaction at
a time that settles what ended, renews the leases of the polls running and claims more; on
SQLite each takes the writers' turn (app/ingest/turns.py), the committer's commits included.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
from collections.abc import Callable, Collection, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, select, update

from app import models
from app.fetching.fetcher import Answer, Fetcher
from app.ingest.committer import Answer as Stored
from app.ingest.committer import Committer
from app.ingest.in_flight import WritesInFlight
from app.ingest.intake import Submission
from app.ingest.turns import turn_transaction, writer_turns
from app.polling import schedule
from app.polling.answers import ask, finishes, store, stored_error, submission
from app.polling.requests import NotPollable, PollRequests, WatchedJob
from app.polling.watches import WatchStatus
from app.providers.model import Provider, State
from app.work.pool import Rounds, go_rounds, results
from app.work.queue import QueueTable, claim, release, renew, settle

log = logging.getLogger(__name__)
WATCHES = QueueTable.of(models.JobWatch)
# How long a write transaction may wait for SQLite writers' turn (app/ingest/turns.py).
_TURN_S = 30.0
# Watches of providers without credentials put off in one transaction (nothing is asked).
_UNCONFIGURED_BATCH = 100


@dataclass(frozen=True, slots=True)
class PollOptions:
    """`concurrency`: polls at once per provider; `poll_after`: when a watch of a provider
    without credentials is looked at again; `write_timeout_s`: how long storing an answer may
    take."""

    concurrency: int
    lease: timedelta
    poll_after: timedelta
    write_timeout_s: float
    poll_s: float


@dataclass(frozen=True, slots=True)
class Watch:
    """A claimed watch: its row's id, queue state and due time as claimed, and its job."""

    id: int
    held: schedule.Held
    job: WatchedJob
    due_at: datetime


@dataclass(frozen=True, slots=True)
class Polled:
    """What asking about a watched job came to at `at`: an answer, or the error. Not `asked`:
    no request could be made (the error says why); `answer` None and no error: given back."""

    watch: Watch
    at: datetime
    answer: Answer | None = None
    error: str | None = None
    retry_after_s: float | None = None
    asked: bool = True


@dataclass(frozen=True, slots=True)
class _Ended:
    """A poll whose answer, if any, was stored: the watch's error, and whether the answer's
    delivery made the job final."""

    polled: Polled
    error: str | None
    finished_job: bool = False


class Poller:
    """Polls what the watches hold until stopped; `run` on a thread of its own."""

    def __init__(
        self,
        engine: Engine,
        *,
        committer: Committer,
        fetcher: Fetcher,
        apis: PollRequests,
        providers: Collection[Provider],
        options: PollOptions,
        worker: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        rng: random.Random | None = None,
        in_flight: WritesInFlight | None = None,
    ) -> None:
        """`providers`: those whose credentials are configured (the others' watches are only
        put off); `clock` tells the time leases, polls and backoffs are reckoned in, `rng`
        draws the backoffs' jitter (a test's own, both); `in_flight`: the web process's writes,
        between which the poller claims and settles."""
        self._engine = engine
        self._committer = committer
        self._fetcher = fetcher
        self._apis = apis
        self._providers = frozenset(providers)
        self._options = options
        self._worker = worker
        self._clock = clock
        self._rng = rng
        self._turns = writer_turns(engine)
        self._stop = threading.Event()
        self._writes = WritesInFlight() if in_flight is None else in_flight
        # When the due watches of providers without credentials are next looked at.
        self._unconfigured_at = datetime.min.replace(tzinfo=UTC)

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        """Settle, renew and claim, have the claimed polled, until stopped; then settle what
        ended (app/work/pool.py `go_rounds`; what ended while the database failed the worker
        waits, its answer stored once)."""

        def exchange(
            ended: Sequence[_Ended], running: Sequence[Watch], claiming: bool
        ) -> list[Watch]:
            free = self._free(running) if claiming else {}
            return self._exchange(ended, [watch.id for watch in running], free)

        def ended(finished: dict[Future[Polled], Watch]) -> list[_Ended]:
            return self._stored(_polled(finished))

        threads = self._options.concurrency * max(1, len(self._providers))
        try:
            go_rounds(
                Rounds("poller", log, exchange, self.poll, ended),
                threads=threads,
                stop=self._stop,
                poll_s=self._options.poll_s,
                writes=self._writes,
            )
        finally:
            self._turns.close()

    def run_once(self) -> int:
        """Claim what is due now, poll it on this thread, store the answers and settle; how many
        watches it polled (tests, and a worker that must not start threads)."""
        watches = self._exchange([], [], self._free([]))
        self._exchange(self._stored([self.poll(watch) for watch in watches]), [], {})
        return len(watches)

    def poll(self, watch: Watch) -> Polled:
        """Ask the watched job's provider about it (on any thread; no database)."""
        try:
            request = self._apis.request(watch.job, now=self._clock())
        except NotPollable as error:
            return Polled(watch, self._clock(), error=str(error), asked=False)
        asked = ask(self._fetcher, request)
        return Polled(watch, self._clock(), asked.answer, asked.error, asked.retry_after_s)

    def _free(self, running: Iterable[Watch]) -> dict[Provider, int]:
        """The places free for each configured provider's polls."""
        busy = [watch.job.provider for watch in running]
        return {
            provider: self._options.concurrency - busy.count(provider)
            for provider in self._providers
        }

    def _stored(self, polled: Sequence[Polled]) -> list[_Ended]:
        """The polls, their answers stored as deliveries through the committer (in the writers'
        turn on SQLite): each with the error its watch keeps."""
        answered = [(index, p) for index, p in enumerate(polled) if p.answer is not None]
        stored: dict[int, Stored] = {}
        if answered:
            submissions = [_submission(p) for _, p in answered]
            stored = store(self._committer, submissions, timeout_s=self._options.write_timeout_s)
            stored = {answered[index][0]: answer for index, answer in stored.items()}
        return [_ended(p, stored.get(index)) for index, p in enumerate(polled)]

    def _exchange(
        self, ended: Sequence[_Ended], running: Sequence[int], free: dict[Provider, int]
    ) -> list[Watch]:
        """One transaction: settle what ended, renew the leases of what runs, claim up to
        `free` more of each provider (and put off the due watches of providers without
        credentials, and end those whose job is final)."""
        with self._transaction() as connection:
            for done in ended:
                self._settle(connection, done)
            now = self._clock()  # after any wait for the turn: leases count from here
            if running:
                until = now + self._options.lease
                renew(connection, WATCHES, running, worker=self._worker, until=until)
            rows = [
                row
                for provider, places in free.items()
                if places > 0
                for row in self._claim(connection, now, provider, places)
            ]
            if free and now >= self._unconfigured_at:
                # Once a poll_s, not once a round: a round may end with every poll.
                self._unconfigured_at = now + timedelta(seconds=self._options.poll_s)
                for provider in Provider:
                    if provider not in self._providers:
                        rows += self._claim(connection, now, provider, _UNCONFIGURED_BATCH)
            jobs = _jobs_of(connection, {row.job_pk for row in rows}) if rows else {}
            watches = []
            poll_after = self._options.poll_after
            for row in rows:
                job = jobs[row.job_pk]
                if State(job.state).is_final:
                    self._settled(connection, row.id, schedule.finished())
                elif Provider(job.provider) not in self._providers:
                    put_off = schedule.not_configured(
                        now, poll_after=poll_after, give_up_at=row.give_up_at
                    )
                    self._settled(connection, row.id, put_off)
                elif (heard := schedule.heard_of_lately(row, job, now, poll_after)) is not None:
                    self._settled(connection, row.id, heard)
                else:
                    watches.append(_watch(row, job))
        return watches

    def _claim(
        self, connection: Connection, now: datetime, provider: Provider, limit: int
    ) -> Sequence[Any]:
        """Up to `limit` due watches of `provider`'s jobs."""
        return claim(
            connection,
            WATCHES,
            worker=self._worker,
            now=now,
            lease=self._options.lease,
            limit=limit,
            where=_of(provider),
        )

    def _settle(self, connection: Connection, done: _Ended) -> None:
        polled = done.polled
        if polled.answer is None and polled.error is None:  # given back
            release(connection, WATCHES, [polled.watch.id], worker=self._worker)
            return
        settled = schedule.after_poll(
            polled.watch.held,
            now=polled.at,
            error=done.error,
            retry_after_s=polled.retry_after_s,
            asked=polled.asked,
            rng=self._rng,
        )
        if self._settled(connection, polled.watch.id, settled, claimed_due=polled.watch.due_at):
            return
        if done.finished_job:
            _count_finishing_poll(connection, polled)
        else:
            log.debug("poller: watch %d ended while its job was polled", polled.watch.id)

    def _settled(
        self,
        connection: Connection,
        watch_id: int,
        settled: schedule.Settled,
        *,
        claimed_due: datetime | None = None,
    ) -> bool:
        """`claimed_due`: after a poll, the watch's due time as claimed; one made due again
        meanwhile (`POST .../poll`, a callback held for confirmation) keeps the sooner time, so
        the poll it asked for, made after the one in flight, is not put off by its backoff."""
        values, retry_at = settled
        return settle(
            connection,
            WATCHES,
            watch_id,
            worker=self._worker,
            values=values,
            retry_at=retry_at,
            claimed_due=claimed_due,
        )

    def _transaction(self) -> contextlib.AbstractContextManager[Connection]:
        # In the writers' turn even when nothing is due: on SQLite every transaction of this
        # engine takes the write lock at BEGIN, a read included (app/db.py).
        return turn_transaction(self._engine, self._turns, wait_s=_TURN_S)


def _polled(finished: dict[Future[Polled], Watch]) -> list[Polled]:
    """A poll whose thread broke (a bug: `poll` catches what a request may raise) is given
    back."""
    return results(finished, broken=lambda watch: Polled(watch, datetime.now(UTC)), what="poller")


def _submission(polled: Polled) -> Submission:
    assert polled.answer is not None
    return submission(polled.answer, polled.watch.job.provider, at=polled.at)


def _ended(polled: Polled, stored: Stored | None) -> _Ended:
    if stored is None:
        return _Ended(polled, polled.error)
    finished = not isinstance(stored, BaseException) and finishes(stored)
    return _Ended(polled, stored_error(stored), finished_job=finished)


def _count_finishing_poll(connection: Connection, polled: Polled) -> None:
    """The poll whose own delivery finished the job ended its watch and took its lease: it is
    counted on the ended watch all the same (a final row, which no worker holds, so nothing
    else writes it; absolute values, so a retried transaction counts it once)."""
    watch = WATCHES.table.c
    connection.execute(
        update(WATCHES.table)
        .where(
            watch.id == polled.watch.id,
            watch.status == WatchStatus.DONE.value,
            watch.leased_by.is_(None),
        )
        .values(polls=polled.watch.held.polls + 1, last_polled_at=polled.at, last_error=None)
    )


def _of(provider: Provider) -> ColumnElement[bool]:
    """The watches of `provider`'s jobs: a range of the (provider, run_after) index, whose first
    rows are the ones due first (the job is never read to choose)."""
    return WATCHES.table.c.provider == provider.value


def _watch(row: Any, job: Any) -> Watch:
    return Watch(
        id=row.id,
        due_at=row.run_after,
        held=schedule.Held(polls=row.polls, attempts=row.attempts, give_up_at=row.give_up_at),
        job=WatchedJob(
            provider=Provider(job.provider),
            job_id=job.job_id,
            input_bucket=job.input_bucket,
            input_region=job.input_region,
            queue_id=job.queue_id,
        ),
    )


def _jobs_of(connection: Connection, job_pks: set[int]) -> dict[int, Any]:
    job = models.Job
    rows = connection.execute(
        select(
            job.id,
            job.provider,
            job.job_id,
            job.state,
            job.input_bucket,
            job.input_region,
            job.deliveries,
            job.last_received_at,
            job.queue_id,
        ).where(job.id.in_(job_pks))
    )
    return {row.id: row for row in rows}

"""Listing Tencent CI's queues (STEMHOOK_CI_QUEUES): the worker that claims a queue's listing row
(`ci_listing`) when it is due, asks CI for the page of the queue's jobs app/polling/listing.py
names, stores it as a delivery on CI's poll endpoint, and settles the row.

A page is stored as a poll's answer is (app/polling/answers.py), parsed and merged by the same
rule: a job nobody registered is created, watched if unfinished (the write path gives a job
first heard of unfinished its watch), recorded if final; a job stemhook knew merges as its
callback would. A page listing no job is not stored: it holds nothing to merge. A stored page
whose jobs were not merged (one the parsers refuse, more than a delivery may create) is listed
past all the same, the row's error naming the delivery that keeps them for a replay: asked
again, CI would answer the same. An answer that is not a page (an error or a maintenance page
answered 2xx) is stored, rejected with the reason, on the page's first try only (kept for
inspection, not once a retry); then, as when a page could not be asked for or stored, the row
keeps its place and the error, and the page is asked for again after a backoff. Every error the
row keeps is logged too: the row keeps only the latest.

One process at a time lists a queue: the worker leases its row (app/work/queue.py) for longer
than asking for a page and storing it take, one row and one page at a time, on its own thread;
a settle after the lease ran out writes nothing (the page, stored twice, merged as a
duplicate). The rows of the configured queues are created when the worker starts, unless they
exist. On SQLite every transaction takes the writers' turn (app/ingest/turns.py).
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.dialects import postgresql, sqlite

from app import models
from app.fetching.fetcher import Answer, Fetcher
from app.ingest.committer import Answer as Stored
from app.ingest.committer import Committer
from app.ingest.turns import turn_transaction, writer_turns
from app.polling import listing
from app.polling.answers import ask, store, stored_error, submission
from app.polling.queues import CiQueue
from app.polling.requests import ListRequests, NotPollable
from app.polling.schedule import Settled
from app.providers.model import Provider
from app.providers.registry import parse_jobs_page
from app.providers.tencent_ci import JobsPage
from app.work.pool import MAX_PAUSE_S
from app.work.queue import QueueTable, claim, settle

log = logging.getLogger(__name__)
LISTINGS = QueueTable.of(models.CiListing)
# How long a write transaction may wait for SQLite writers' turn (app/ingest/turns.py).
_TURN_S = 30.0
# A stored page whose jobs were not merged is listed past (asked again, CI would answer the
# same): the delivery keeps them, replayable once the parsers take them.
UNMERGED = "the page stored as delivery {delivery} was not merged ({why}): replay it once it can be"


@dataclass(frozen=True, slots=True)
class ListOptions:
    """`every`: the longest window, and how often a queue is listed (STEMHOOK_POLL_AFTER);
    `lookback`: how far back a first listing begins (STEMHOOK_POLL_GIVE_UP_AFTER);
    `page_size`: jobs asked for a page (no more than a delivery may create); `lease`: longer
    than asking for a page and storing it take."""

    every: timedelta
    lookback: timedelta
    page_size: int
    lease: timedelta
    write_timeout_s: float
    poll_s: float


class QueueLister:
    """Lists the queues' jobs until stopped; `run` on a thread of its own."""

    def __init__(
        self,
        engine: Engine,
        *,
        committer: Committer,
        fetcher: Fetcher,
        apis: ListRequests,
        queues: Sequence[CiQueue],
        options: ListOptions,
        worker: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        rng: random.Random | None = None,
    ) -> None:
        """`clock` tells the time windows, leases and backoffs are reckoned in, `rng` draws the
        backoffs' jitter (a test's own, both)."""
        self._engine = engine
        self._committer = committer
        self._fetcher = fetcher
        self._apis = apis
        self._queues = {queue.name: queue for queue in queues}
        self._options = options
        self._worker = worker
        self._clock = clock
        self._rng = rng
        self._turns = writer_turns(engine)
        self._stop = threading.Event()
        self._registered = False

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        """List what is due, pausing a poll's time when nothing is, until stopped. A database
        that fails the worker is tried again after a pause that doubles up to
        MAX_PAUSE_S (app/work/pool.py)."""
        pause = 0.0
        try:
            while not self._stop.is_set():
                try:
                    listed, pause = self.run_once(), 0.0
                except Exception:
                    log.exception("lister: the database failed the worker")
                    listed, pause = 0, min(max(2 * pause, self._options.poll_s), MAX_PAUSE_S)
                if not listed:
                    self._stop.wait(pause or self._options.poll_s)
        finally:
            self._turns.close()

    def run_once(self) -> int:
        """Claim a due queue and list its next page, as many times as there are queues at
        most; how many listings it claimed."""
        if not self._registered:
            self._register()
            self._registered = True
        claimed = 0
        while claimed < len(self._queues) and not self._stop.is_set():
            row = self._claim()
            if row is None:
                break
            claimed += 1
            self._settle(row, self._list(self._queues[row.name], _listing(row)))
        return claimed

    def _list(self, queue: CiQueue, held: listing.Listing) -> Settled:
        """What the row becomes once the page due (if any) was asked for and stored."""
        options = self._options
        window = listing.window(
            held, now=self._clock(), every=options.every, lookback=options.lookback
        )
        if window is None:
            assert held.listed_to is not None  # a first listing always has a window
            return listing.not_yet(held.listed_to, now=self._clock(), every=options.every)
        try:
            request = self._apis.list_request(
                queue, window, size=options.page_size, now=self._clock()
            )
        except NotPollable as error:
            return self._failed(held, window, str(error))
        asked = ask(self._fetcher, request)
        at = self._clock()
        if asked.answer is None:
            return self._failed(held, window, asked.error or "no answer", asked.retry_after_s)
        page = _page(asked.answer)
        if isinstance(page, str):
            if held.attempts == 1:  # kept for inspection once, not once a retry
                self._store(asked.answer, at)
            return self._failed(held, window, page)
        unmerged = None
        if page.jobs:
            stored = self._store(asked.answer, at)
            if (why := stored_error(stored)) is not None:
                if isinstance(stored, BaseException):
                    return self._failed(held, window, why)
                unmerged = UNMERGED.format(delivery=stored.delivery_id, why=why)
        return listing.listed(
            window, next_token=page.next_token, now=at, every=options.every, error=unmerged
        )

    def _store(self, answer: Answer, at: datetime) -> Stored:
        """`answer` stored as a delivery on CI's poll endpoint received `at`."""
        [stored] = store(
            self._committer,
            [submission(answer, Provider.TENCENT_CI, at=at)],
            timeout_s=self._options.write_timeout_s,
        ).values()
        return stored

    def _failed(
        self,
        held: listing.Listing,
        window: listing.Window,
        error: str,
        retry_after_s: float | None = None,
    ) -> Settled:
        return listing.failed(
            held, window, now=self._clock(), error=error, retry_after_s=retry_after_s, rng=self._rng
        )

    def _register(self) -> None:
        """A listing row for each configured queue that has none, due now."""
        with self._transaction() as connection:
            insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
            now = self._clock()
            rows = [{"name": name, "run_after": now} for name in self._queues]
            connection.execute(
                insert(models.CiListing)
                .values(rows)
                .on_conflict_do_nothing(index_elements=[models.CiListing.name])
            )

    def _claim(self) -> Any | None:
        with self._transaction() as connection:
            rows = claim(
                connection,
                LISTINGS,
                worker=self._worker,
                now=self._clock(),
                lease=self._options.lease,
                limit=1,
                where=LISTINGS.table.c.name.in_(list(self._queues)),
            )
        return rows[0] if rows else None

    def _settle(self, row: Any, settled: Settled) -> None:
        """The row settled; its error, if any, logged too (the row keeps only the latest)."""
        values, due = settled
        if values.get("last_error") is not None:
            log.warning("lister: listing CI queue %s: %s", row.name, values["last_error"])
        with self._transaction() as connection:
            kept = settle(
                connection, LISTINGS, row.id, worker=self._worker, values=values, retry_at=due
            )
        if not kept:
            log.warning("lister: a listing's lease ran out while its page was listed")

    def _transaction(self) -> contextlib.AbstractContextManager[Connection]:
        return turn_transaction(self._engine, self._turns, wait_s=_TURN_S)


def _page(answer: Answer) -> JobsPage | str:
    """What the answer says of its page, or why it is not one. Whatever the parser raises, the
    body made it raise (as app/ingest/admission.py judges a delivery)."""
    try:
        return parse_jobs_page(answer.body, content_type=answer.content_type)
    except Exception as error:
        return f"not a page of jobs: {error}"[:500]


def _listing(row: Any) -> listing.Listing:
    return listing.Listing(
        listed_to=row.listed_to,
        window_end=row.window_end,
        next_token=row.next_token,
        pages=row.pages,
        attempts=row.attempts,
    )

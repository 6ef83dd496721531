"""A callback and a poll answer about the same job committed at once, through the real write
path, on SQLite and PostgreSQL: the callback through a committer of its own (as a writer process
commits it), the answer through the poller's, each on an engine of its own. Whichever commits
first, the job ends succeeded once, with one event to succeeded, every delivery counted and
linked, its files queued once, and its watch done and held by nobody.

The orders are made, not hoped for: a hook just before one side's COMMIT (SQLAlchemy's commit
event, on that side's thread) lets the other side start, and on PostgreSQL waits until the other
side's transaction is seen waiting for the job's lock, so both are in flight at once. Many jobs
at once then let the two sides interleave as they will."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, event, func, select

from app import models
from app.db import create_sync_engine
from app.ingest.committer import Committer
from app.ingest.intake import Receipt
from app.polling.watches import DEFAULT_WATCH
from app.polling.worker import Poller
from app.providers.model import Provider
from app.providers.registry import poll_endpoint
from tests.api.payloads import suno_json
from tests.conftest import Backend
from tests.fetching.servers import Handler, Route
from tests.ingest.batches import wait_for_a_lock_wait
from tests.ingest.submissions import detected
from tests.mirror.conftest import Clock
from tests.polling.conftest import FakeProviders, answer_of, committer_on, expect, replying
from tests.reliability.support import figures

Fake = Callable[..., FakeProviders]
PollerFor = Callable[..., Poller]
SUNO = Provider.SUNO
ANSWERS = {"success": "record_info_separate_vocal.json", "pending": "record_info_pending.json"}
# Far above what a quiet machine needs; waited for by looking, never slept through.
PATIENCE_S = 60


class Callbacks:
    """The writer process's side: Suno callbacks committed by a committer on an engine of its
    own, in the writers' turn on SQLite, one at a time."""

    def __init__(self, backend: Backend) -> None:
        self.engine = create_sync_engine(backend.settings())
        self._committer = committer_on(self.engine)

    def send(self, job_id: str) -> Receipt:
        until = time.monotonic() + PATIENCE_S
        with self._committer.turn(until=until):
            answers = dict(
                answer
                for group in self._committer.commit(
                    [detected(suno_json(job_id))], deadlines=[until]
                )
                for answer in group
            )
        receipt = answers[0]
        assert isinstance(receipt, Receipt), receipt
        return receipt

    def close(self) -> None:
        self._committer.close()
        self.engine.dispose()


@dataclass
class Racers:
    """Both sides: the callbacks' writer, and a poller whose committer stores its answers on an
    engine of its own (`answers`); `engine` is the test's, `postgresql` says which database."""

    engine: Engine
    postgresql: bool
    clock: Clock
    callbacks: Callbacks
    answers: Engine
    storing: Committer
    poller_for: PollerFor
    fake: Fake

    def poller(self, suno: dict[str, list[Route]]) -> tuple[Poller, FakeProviders]:
        """A poller of a fake Suno API answering as `suno` says, and that API; each job in it
        registered and due."""
        providers = self.fake(suno=suno)
        made = self.poller_for(providers, storing=self.storing)
        for job_id in suno:
            expect(self.engine, SUNO, job_id, at=self.clock.now)
        self.clock.now += DEFAULT_WATCH.poll_after
        return made, providers


@pytest.fixture
def racers(
    backend: Backend, engine: Engine, clock: Clock, fake: Fake, poller_for: PollerFor
) -> Iterator[Racers]:
    answers = create_sync_engine(backend.settings())
    callbacks = Callbacks(backend)
    made = Racers(
        engine,
        backend.name == "postgresql",
        clock,
        callbacks,
        answers,
        committer_on(answers),
        poller_for,
        fake,
    )
    yield made
    made.storing.close()
    answers.dispose()
    callbacks.close()


@contextmanager
def before_commit(engine: Engine, hook: Callable[[], None]) -> Iterator[None]:
    """`hook` runs on the committing thread just before each COMMIT of `engine`'s transactions,
    while they still hold every lock they took."""

    def committing(connection: Connection) -> None:
        hook()

    event.listen(engine, "commit", committing)
    try:
        yield
    finally:
        event.remove(engine, "commit", committing)


def settled(engine: Engine, job_id: str) -> dict[str, Any]:
    """What the database holds of the job: its row, its events to succeeded, the deliveries
    linked to it (endpoint, outcome) in commit order, its files, its watch."""
    job, event_, link, delivery = models.Job, models.JobEvent, models.DeliveryJob, models.Delivery
    watch, file = models.JobWatch, models.JobFile
    with engine.connect() as connection:
        row = connection.execute(
            select(job.id, job.state, job.deliveries, job.outputs).where(job.job_id == job_id)
        ).one()
        succeeded = connection.scalar(
            select(func.count())
            .select_from(event_)
            .where(event_.job_pk == row.id, event_.to_state == "succeeded")
        )
        linked = connection.execute(
            select(delivery.endpoint, delivery.outcome)
            .join(link, link.delivery_id == delivery.id)
            .where(link.job_pk == row.id)
            .order_by(delivery.id)
        ).all()
        files = connection.scalar(
            select(func.count()).select_from(file).where(file.job_pk == row.id)
        )
        held = connection.execute(
            select(
                watch.status,
                watch.polls,
                watch.last_polled_at,
                watch.run_after,
                watch.leased_by,
                watch.leased_until,
            ).where(watch.job_pk == row.id)
        ).one()
    return {
        "state": row.state,
        "deliveries": row.deliveries,
        "outputs": len(row.outputs or []),
        "succeeded_events": succeeded,
        "linked": [tuple(pair) for pair in linked],
        "files": files,
        "watch": dict(held._mapping),
    }


def assert_settled_once(job: dict[str, Any], *, answers: int) -> None:
    """Succeeded once, the callback and each of `answers` poll answers stored and linked once,
    its files queued once, its watch ended and held by nobody."""
    assert job["state"] == "succeeded"
    assert job["succeeded_events"] == 1
    endpoints = sorted(endpoint for endpoint, _ in job["linked"])
    assert endpoints == ["auto"] + [poll_endpoint(SUNO)] * answers
    assert job["deliveries"] == 1 + answers
    assert [outcome for _, outcome in job["linked"]].count("accepted") >= 1
    assert job["outputs"] > 0
    assert job["files"] == job["outputs"]
    watch = job["watch"]
    assert watch["status"] == "done"
    assert (watch["run_after"], watch["leased_by"], watch["leased_until"]) == (None, None, None)
    assert watch["polls"] in (0, 1)
    assert (watch["last_polled_at"] is None) == (watch["polls"] == 0)


@pytest.mark.parametrize("answer", sorted(ANSWERS))
def test_a_callback_committing_while_the_answer_is_stored_wins_and_the_answer_changes_nothing(
    racers: Racers, answer: str
) -> None:
    """The fake provider answers only once the callback's transaction has stored everything
    and is about to commit; on PostgreSQL that COMMIT waits until the answer's transaction is
    seen waiting for the job's lock."""
    at_commit = threading.Event()
    sent: list[Receipt] = []
    callback = threading.Thread(target=lambda: sent.append(racers.callbacks.send("t-1")))

    def asked(handler: Handler) -> None:
        callback.start()
        assert at_commit.wait(PATIENCE_S)
        replying(answer_of(SUNO, ANSWERS[answer], "t-1"))(handler)

    def holding_the_job() -> None:
        at_commit.set()
        if racers.postgresql:
            wait_for_a_lock_wait(racers.engine, lambda: True)

    poller, _ = racers.poller({"t-1": [asked]})
    with before_commit(racers.callbacks.engine, holding_the_job):
        assert poller.run_once() == 1
    callback.join(PATIENCE_S)

    job = settled(racers.engine, "t-1")
    assert [receipt.outcome.value for receipt in sent] == ["accepted"]
    assert job["linked"] == [("auto", "accepted"), (poll_endpoint(SUNO), "duplicate")]
    assert_settled_once(job, answers=1)
    assert job["watch"]["polls"] == 0  # its answer came after the job had ended


@pytest.mark.parametrize("answer", sorted(ANSWERS))
def test_a_callback_arriving_while_the_answer_commits_is_merged_after_it(
    racers: Racers, answer: str
) -> None:
    """The callback's commit starts just before the answer's COMMIT (on PostgreSQL it is seen
    waiting for the job's lock first), then runs on while the poller settles the watch."""
    sent: list[Receipt] = []
    callback = threading.Thread(target=lambda: sent.append(racers.callbacks.send("t-1")))

    def answer_committing() -> None:
        callback.start()
        if racers.postgresql:
            wait_for_a_lock_wait(racers.engine, callback.is_alive)

    poller, _ = racers.poller({"t-1": [replying(answer_of(SUNO, ANSWERS[answer], "t-1"))]})
    with before_commit(racers.answers, answer_committing):
        assert poller.run_once() == 1
    callback.join(PATIENCE_S)

    job = settled(racers.engine, "t-1")
    assert_settled_once(job, answers=1)
    if answer == "success":  # the answer finished the job: the callback is a duplicate
        assert job["linked"] == [(poll_endpoint(SUNO), "accepted"), ("auto", "duplicate")]
        assert [receipt.outcome.value for receipt in sent] == ["duplicate"]
        assert (job["watch"]["polls"], job["watch"]["last_polled_at"]) == (1, racers.clock.now)
    else:  # PENDING is the registered job's first word; the callback then finishes the job
        assert job["linked"] == [(poll_endpoint(SUNO), "accepted"), ("auto", "accepted")]
        assert [receipt.outcome.value for receipt in sent] == ["accepted"]


def test_callbacks_and_polls_of_many_jobs_at_once_settle_each_job_once(racers: Racers) -> None:
    """40 due jobs polled by a running poller while a writer commits their callbacks: those of
    10 from the start (racing the poller's claims), of 15 as soon as the provider is asked about
    them (racing the answer's commit), of 15 once the provider answered about them and the
    poller commits answers (racing that COMMIT and the watch's settle). Half the answers say
    SUCCESS, half PENDING. The clock stands still: nothing is polled twice."""
    jobs = [f"s-{n}" for n in range(40)]
    called_first, called_on_asking, called_on_committing = jobs[:10], jobs[10:25], jobs[25:]
    due_callbacks: queue.SimpleQueue[str | None] = queue.SimpleQueue()
    answered: queue.SimpleQueue[str] = queue.SimpleQueue()
    sent: list[Receipt] = []

    def racing(job_id: str, fixture: str) -> Callable[[Handler], None]:
        def asked(handler: Handler) -> None:
            if job_id in called_on_asking:
                due_callbacks.put(job_id)
            elif job_id in called_on_committing:
                answered.put(job_id)
            replying(answer_of(SUNO, fixture, job_id))(handler)

        return asked

    def answers_committing() -> None:
        while not answered.empty():
            due_callbacks.put(answered.get())

    def writer() -> None:
        while (job_id := due_callbacks.get()) is not None:
            sent.append(racers.callbacks.send(job_id))

    fixtures = [ANSWERS["success"], ANSWERS["pending"]]
    poller, providers = racers.poller(
        {job: [racing(job, fixtures[n % 2])] for n, job in enumerate(jobs)}
    )
    engine = racers.engine
    for job_id in called_first:
        due_callbacks.put(job_id)
    threads = [threading.Thread(target=writer), threading.Thread(target=poller.run)]
    with before_commit(racers.answers, answers_committing):
        for thread in threads:
            thread.start()
        try:
            deadline = time.monotonic() + PATIENCE_S
            while not (len(sent) == len(jobs) and _all_settled(engine)):
                assert time.monotonic() < deadline, f"{len(sent)} callbacks sent"
                time.sleep(0.02)
        finally:
            due_callbacks.put(None)
            poller.stop()
            for thread in threads:
                thread.join(PATIENCE_S)

    asked = providers.suno.asked
    assert set(asked) >= set(called_on_asking + called_on_committing)
    outcomes = []
    for job_id in jobs:
        job = settled(engine, job_id)
        assert_settled_once(job, answers=asked.count(job_id))
        outcomes.append(job["linked"][0])
    figures(
        f"callbacks racing polls on {engine.dialect.name}",
        jobs=len(jobs),
        polls=len(asked),
        finished_by_an_answer=outcomes.count((poll_endpoint(SUNO), "accepted")),
        answer_committed_first=sum(endpoint != "auto" for endpoint, _ in outcomes),
    )


def _all_settled(engine: Engine) -> bool:
    """Every job succeeded, and no watch open or held."""
    job, watch = models.Job, models.JobWatch
    with engine.connect() as connection:
        unsettled = connection.scalar(
            select(func.count())
            .select_from(watch)
            .join(job, job.id == watch.job_pk)
            .where(
                (job.state != "succeeded") | (watch.status != "done") | watch.leased_by.is_not(None)
            )
        )
    return unsettled == 0

"""The committer against a PostgreSQL that stops answering, or answers late, mid-transaction;
and how it bounds what one transaction holds: job rows, and time."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from itertools import chain

import pytest
from sqlalchemy import Engine, event, text

from app.config import Settings
from app.db import create_sync_engine, interrupt
from app.errors import StorageUnavailable
from app.ingest.committer import Answer, Committer, _Watch, _Watchdog
from app.ingest.intake import Outcome, Receipt, Submission
from app.polling.watches import DEFAULT_WATCH
from tests.api.payloads import ci_json, media_lab_list
from tests.conftest import Backend, stalling_job
from tests.ingest.batches import MIRROR_ON
from tests.ingest.submissions import detected
from tests.proxy import FaultyProxy


def submission(job_id: str) -> Submission:
    return detected(ci_json(job_id, "Success"))


def committer_for(engine: Engine, *, timeout_s: float) -> Committer:
    return Committer(
        engine,
        suno_key=None,
        timeout_s=timeout_s,
        max_jobs=100,
        mirror=MIRROR_ON,
        watch=DEFAULT_WATCH,
    )


def commit(committer: Committer, submissions: list[Submission], *, within_s: float) -> list[Answer]:
    """What the committer answers, each sender waiting `within_s` from now."""
    deadline = time.monotonic() + within_s
    answers = dict(
        chain.from_iterable(committer.commit(submissions, deadlines=[deadline] * len(submissions)))
    )
    return [answers[index] for index in range(len(submissions))]


@pytest.mark.postgres_only
def test_a_commit_the_server_never_answers_is_interrupted(
    backend: Backend, settings: Settings, proxy: FaultyProxy
) -> None:
    url = backend.url.replace(":5432/", f":{proxy.port}/")
    engine = create_sync_engine(Backend("proxied", url).settings(write_timeout_s=1))
    committer = committer_for(engine, timeout_s=1)
    answers: list[Answer] = []
    try:
        (before,) = commit(committer, [submission("j-before")], within_s=1)
        assert isinstance(before, Receipt) and before.outcome is Outcome.ACCEPTED
        proxy.mute_at(b"COMMIT")
        worker = threading.Thread(
            target=lambda: answers.extend(commit(committer, [submission("j-hung")], within_s=1)),
            daemon=True,
        )
        worker.start()
        worker.join(timeout=60)  # the watchdog interrupts at the deadline, far sooner

        assert not worker.is_alive(), "the COMMIT was never interrupted"
        assert [type(answer) for answer in answers] == [StorageUnavailable]
    finally:
        committer.close()
        engine.dispose()


@pytest.mark.postgres_only
def test_a_slow_commit_is_logged_with_its_duration(
    backend: Backend,
    proxy: FaultyProxy,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A threshold well above what a commit of the shared server takes, even on a busy disk or a
    # starved machine, and below the delay given to the COMMIT.
    monkeypatch.setattr("app.ingest.committer.SLOW_COMMIT_S", 0.9)
    url = backend.url.replace(":5432/", f":{proxy.port}/")
    engine = create_sync_engine(Backend("proxied", url).settings())
    committer = committer_for(engine, timeout_s=5)
    caplog.set_level(logging.WARNING, logger="app.ingest.committer")
    try:
        # Slow statements are not a slow commit: only the COMMIT is timed.
        proxy.delay_at(b"INSERT", 1.0)
        (slow_statements,) = commit(committer, [submission("j-slow-insert")], within_s=5)
        assert not [r for r in caplog.records if r.name == "app.ingest.committer"]

        proxy.delay_at(b"COMMIT", 1.0)
        answers = commit(committer, [submission("j-slow-1"), submission("j-slow-2")], within_s=5)
    finally:
        committer.close()
        engine.dispose()

    outcomes = [a.outcome for a in (slow_statements, *answers) if isinstance(a, Receipt)]
    assert outcomes == [Outcome.ACCEPTED] * 3
    (record,) = [r for r in caplog.records if r.name == "app.ingest.committer"]
    assert record.levelno == logging.WARNING
    assert record.deliveries == 2  # type: ignore[attr-defined]
    assert record.commit_ms >= 1000  # type: ignore[attr-defined]


def _three_lists_of_100_jobs(settings: Settings) -> int:
    """Three Media Lab lists of 100 jobs each, committed in one batch: how many commits it took."""
    writer_engine = create_sync_engine(settings)
    commits: list[None] = []
    event.listen(writer_engine, "commit", lambda _connection: commits.append(None))
    committer = committer_for(writer_engine, timeout_s=5)
    lists = [detected(media_lab_list([f"bound-{n}-{i}" for i in range(100)])) for n in range(3)]
    try:
        answers = commit(committer, lists, within_s=5)
    finally:
        committer.close()
        writer_engine.dispose()
    assert [a.outcome for a in answers if isinstance(a, Receipt)] == [Outcome.ACCEPTED] * 3
    return len(commits)


def test_a_batch_is_written_in_transactions_of_bounded_job_rows(
    settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("app.ingest.committer.MAX_TRANSACTION_JOBS", 150)

    assert _three_lists_of_100_jobs(settings) == 3  # 100 + 100 jobs would be above 150
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM job")) == 300


def test_a_postgresql_transaction_locks_at_most_its_budget_of_jobs(
    backend: Backend, settings: Settings, engine: Engine
) -> None:
    """Each job a PostgreSQL transaction writes takes a lock in the server's shared table."""
    commits = _three_lists_of_100_jobs(settings)

    # 300 jobs: above POSTGRESQL_MAX_JOBS_PER_TRANSACTION (256), within SQLite's 1,000.
    assert commits == (2 if backend.name == "postgresql" else 1)


def test_a_batch_that_outlives_its_time_fails_only_its_heavy_delivery(
    backend: Backend, settings: Settings, engine: Engine
) -> None:
    """Tried again in halves before the senders give up: the neighbours are committed and
    answered in time, without waiting for the delivery that never finishes, which is answered
    503 with nothing of it stored."""
    writer_engine = create_sync_engine(settings)
    # Time enough for three halvings on a loaded machine (the least an attempt gets is 1 s).
    committer = committer_for(writer_engine, timeout_s=8)
    names = ["split-1", "split-heavy", "split-2", "split-3", "split-4"]
    answered: dict[str, object] = {}
    late: list[str] = []
    try:
        with stalling_job(engine, backend, "split-heavy"):
            deadline = time.monotonic() + 8
            groups = committer.commit(
                [submission(name) for name in names], deadlines=[deadline] * len(names)
            )
            for group in groups:
                for index, answer in group:
                    name = names[index]
                    answered[name] = answer.outcome if isinstance(answer, Receipt) else type(answer)
                    if isinstance(answer, Receipt) and time.monotonic() >= deadline:
                        late.append(name)
    finally:
        committer.close()
        writer_engine.dispose()

    assert answered == dict.fromkeys(names, Outcome.ACCEPTED) | {"split-heavy": StorageUnavailable}
    assert late == []  # each neighbour's answer went out before its sender gave up
    with engine.connect() as connection:
        jobs = connection.execute(text("SELECT job_id FROM job ORDER BY job_id")).scalars().all()
        deliveries = connection.scalar(text("SELECT count(*) FROM delivery"))
    assert jobs == sorted(set(names) - {"split-heavy"})
    assert deliveries == 4


@pytest.mark.postgres_only
def test_a_connection_interrupted_just_after_its_commit_is_not_used_again(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The watchdog can shut a connection down after its COMMIT returned but before the watch
    ended, when the deadline falls in between: the next batch must not inherit it (a 503)."""
    watching = _Watchdog.watching

    @contextlib.contextmanager
    def interrupted_after_commit(self: _Watchdog, watch: _Watch) -> Iterator[None]:
        with watching(self, watch):
            yield
            watch.interrupted = True  # as the watchdog marks it, the moment after the COMMIT
            interrupt(watch.dbapi_connection)

    engine = create_sync_engine(settings)
    committer = committer_for(engine, timeout_s=5)
    try:
        monkeypatch.setattr(_Watchdog, "watching", interrupted_after_commit)
        (first,) = commit(committer, [submission("j-cut-after")], within_s=5)
        monkeypatch.undo()
        (next_batch,) = commit(committer, [submission("j-next")], within_s=5)
    finally:
        committer.close()
        engine.dispose()

    assert isinstance(first, Receipt) and first.outcome is Outcome.ACCEPTED
    assert isinstance(next_batch, Receipt) and next_batch.outcome is Outcome.ACCEPTED


@pytest.mark.postgres_only
def test_a_value_the_row_type_refuses_orphans_only_its_delivery(
    settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch's rows are read as the table's row type, which refuses a kind longer than its
    column (a 64-letter Tag grows past 64 in snake case; the parsers' own limit is lifted): the
    batch fails, is tried again delivery by delivery, and only the one refused is kept,
    orphaned."""
    monkeypatch.setattr("app.providers.registry.MAX_KIND", 1000)
    too_long = ci_json("row-refused", "Success").replace(b"VoiceSeparate", b"Ab" * 32)
    writer_engine = create_sync_engine(settings)
    committer = committer_for(writer_engine, timeout_s=10)
    try:
        answers = commit(
            committer,
            [submission("row-1"), detected(too_long), submission("row-2")],
            within_s=10,
        )
    finally:
        committer.close()
        writer_engine.dispose()

    outcomes = [a.outcome if isinstance(a, Receipt) else type(a) for a in answers]
    assert outcomes == [Outcome.ACCEPTED, Outcome.ORPHANED, Outcome.ACCEPTED]
    with engine.connect() as connection:
        jobs = connection.execute(text("SELECT job_id FROM job ORDER BY job_id")).scalars().all()
        stored = connection.execute(text("SELECT outcome FROM delivery ORDER BY id")).all()
    assert jobs == ["row-1", "row-2"]
    assert sorted(outcome for (outcome,) in stored) == ["accepted", "accepted", "orphaned"]

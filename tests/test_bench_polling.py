"""bench/polling's pieces: the watches it makes due or not on a real database, and its report."""

from __future__ import annotations

from contextlib import closing
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, select, update

from app import models
from app.providers.model import Provider
from bench.beside import Beside, Rounds, Run
from bench.ingest.databases import Backend as BenchBackend
from bench.ingest.databases import Scratch
from bench.ingest.facts import Context
from bench.ingest.payloads import family
from bench.ingest.report import POLLING
from bench.ingest.wrk import Load
from bench.polling.report import section
from bench.polling.runs import KINDS, Outcome, Plan, PollRate, Watches
from tests.conftest import Backend
from tests.polling.conftest import expect


def test_none_due_puts_off_every_open_watch_and_polls_are_counted(
    backend: Backend, engine: Engine
) -> None:
    now = datetime.now(UTC)
    for job_id in ("waiting", "polling", "done"):
        expect(engine, Provider.SUNO, job_id, at=now)
    watch, job = models.JobWatch, models.Job
    with engine.begin() as connection:
        for job_id, values in (
            ("polling", {"status": "polling", "polls": 2, "run_after": now}),
            ("done", {"status": "done", "polls": 1, "run_after": None}),
        ):
            of_job = select(job.id).where(job.job_id == job_id).scalar_subquery()
            connection.execute(update(watch).where(watch.job_pk == of_job).values(**values))

    with closing(Watches(Scratch(BenchBackend(backend.name), backend.url))) as watches:
        watches.none_due()
        polls = watches.polls()

    with engine.connect() as connection:
        rows = connection.execute(
            select(job.job_id, watch.run_after).join(job, job.id == watch.job_pk)
        )
        due = {job_id: run_after for job_id, run_after in rows}
    assert polls == 3
    assert due["done"] is None
    for job_id in ("waiting", "polling"):
        assert due[job_id] > now + timedelta(hours=23)


def test_the_section_shows_poll_rates_and_ingest_beside_polls() -> None:
    k = KINDS
    rates = {0: {k.busy: 90, k.idle_a: 100, k.idle_b: 100}}
    runs = tuple(
        Run(kind, number, _load(rate), done=50 if kind == k.busy else 0)
        for number, by_kind in rates.items()
        for kind, rate in by_kind.items()
    )
    rate = PollRate(4, 600, 10.0, 1.2, 0.1, 0.05, None)
    outcome = Outcome(BenchBackend.SQLITE, 2.0, (rate,), Beside(KINDS, runs), ())
    plan = Plan(10_000, (4,), 20, Rounds(family("tencent-ci"), 1, 5, 128), 20, 64)

    text = section([outcome], plan, Context("cmd", "abc", "today", "2 cores", ("start: 0",)))

    assert text.startswith(POLLING.begin) and text.endswith(POLLING.end + "\n")
    assert "| SQLite | 4 | 600 | 10.0 | 60.0 | 2,000 | 167 | — | 83 |" in text
    assert "| SQLite | 100 | 90 | 0.900 (0.900–0.900) | 1.000 (1.000–1.000) | 10.0 | 0 |" in text


def _load(rate: float) -> Load:
    return Load(requests=int(rate * 5), duration_s=5, p50_ms=1, p90_ms=2, p99_ms=3, max_ms=4)

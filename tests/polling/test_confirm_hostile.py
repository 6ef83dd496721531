"""Review of STEMHOOK_CONFIRM_BY_POLL (docs/decisions/0019) against a sender who knows the callback
URL, on SQLite and PostgreSQL, fake CI on loopback: a true CI success, held for the provider's
word, must end confirmed by CI's answer whatever a stranger posted about the job meanwhile, and
the poll its claim makes due must not be lost."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import Engine, select, update

from app import models
from app.ingest.committer import Committer
from app.ingest.intake import Outcome
from app.polling.worker import Poller
from app.providers.model import Provider
from tests.fetching.servers import Handler
from tests.ingest.test_claims import delivery, job
from tests.mirror.conftest import Clock
from tests.polling.conftest import (
    FakeProviders,
    answer_of,
    committer_on,
    replying,
    watch_of,
)
from tests.polling.test_confirm import ci_callback, received

CI = Provider.TENCENT_CI


def test_a_forged_progress_report_cannot_misaddress_the_poll_that_confirms_a_true_success(
    engine: Engine,
    clock: Clock,
    fake: Callable[..., FakeProviders],
    poller_for: Callable[..., Poller],
    confirming: Committer,
) -> None:
    """The confirming poll is addressed by the job's input bucket and region, which an unsigned
    *unfinished* callback that wins the job (`Pause` wins sideways over `Running`) must not
    move: a stranger who knows a job id posts a `Pause` naming another region, and CI would be
    asked on a host that does not know the job, its true `Success` callback held for good. They
    keep their first value (statements.py FIRST_WORD): an unfinished callback can neither undo
    nor delay a provider's final answer (record 19)."""
    job_id = "j-real"
    providers = fake(
        ci={job_id: [replying(answer_of(CI, "describe_media_job_success.xml", job_id))]}
    )
    poller = poller_for(providers, storing=confirming)
    received(confirming, ci_callback(job_id, state="Running"), clock)  # CI's own progress report

    forged = received(confirming, ci_callback(job_id, state="Pause", region="ap-beijing"), clock)
    true = received(confirming, ci_callback(job_id), clock)  # CI's own success, held

    assert forged.outcome is Outcome.ACCEPTED
    assert true.outcome is Outcome.UNCONFIRMED
    assert poller.run_once() == 1  # the claim made the watch due at once
    assert watch_of(engine, job_id)["last_error"] is None
    assert job(engine, job_id)["state"] == "succeeded"
    assert delivery(engine, true.delivery_id) == ("duplicate", None)


def test_a_claim_held_while_its_job_is_being_polled_keeps_its_poll_due_now(
    engine: Engine,
    clock: Clock,
    fake: Callable[..., FakeProviders],
    poller_for: Callable[..., Poller],
    confirming: Committer,
) -> None:
    """A claim makes the job's open watch due now (`due_watch`); where a poll in flight holds
    that watch, its settle keeps that sooner time rather than write its backoff over it (up to
    30 minutes). Here CI's success callback arrives while CI is still answering the poll sent
    just before the job ended (`Running`): the next poll is due at once, and confirms it."""
    job_id = "j-race"
    writer = committer_on(engine, confirm=frozenset({CI}))  # the writer process's

    def callback_arrives_meanwhile(handler: Handler) -> None:
        clock.now += timedelta(seconds=1)  # after the poll was claimed and sent
        held = received(writer, ci_callback(job_id), clock)
        assert held.outcome is Outcome.UNCONFIRMED
        replying(answer_of(CI, "describe_media_job_running.xml", job_id))(handler)

    success = replying(answer_of(CI, "describe_media_job_success.xml", job_id))
    providers = fake(ci={job_id: [callback_arrives_meanwhile, success]})
    poller = poller_for(providers, storing=confirming)
    try:
        received(confirming, ci_callback(job_id, state="Running"), clock)
        with engine.begin() as connection:  # polled for a while: its backoff is long
            connection.execute(
                update(models.JobWatch)
                .where(
                    models.JobWatch.job_pk
                    == select(models.Job.id).where(models.Job.job_id == job_id).scalar_subquery()
                )
                .values(status="polling", polls=10, run_after=clock.now)
            )

        assert poller.run_once() == 1  # asked; the callback came while CI answered
        assert watch_of(engine, job_id)["run_after"] <= clock.now

        assert poller.run_once() == 1
        assert job(engine, job_id)["state"] == "succeeded"
    finally:
        writer.close()

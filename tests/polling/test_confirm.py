"""Unsigned callbacks confirmed by a poll (STEMHOOK_CONFIRM_BY_POLL), against fake provider APIs
on loopback, on SQLite and PostgreSQL: a Tencent CI callback that says a job succeeded is held,
CI is asked about the job at once, and what CI answers is what the job becomes; the callback is
a duplicate of that answer, or rejected with the reason where CI contradicts it."""

from __future__ import annotations

import re
from collections.abc import Callable

from sqlalchemy import Engine, select

from app import models
from app.ingest.committer import Committer
from app.ingest.intake import Outcome, Receipt
from app.polling.answers import store
from app.polling.worker import Poller
from app.providers.model import Provider
from tests.conftest import FIXTURES
from tests.ingest.submissions import detected
from tests.ingest.test_claims import delivery, job
from tests.mirror.conftest import Clock
from tests.polling.conftest import FakeProviders, answer_of, replying, watch_of

CI = Provider.TENCENT_CI
# A CI TaskFinish callback naming a job in the bucket the COS keys may read (tests/polling).
_CALLBACK = (FIXTURES / "tencent-ci" / "seed000_case1_voice_separate.xml").read_text()


def ci_callback(job_id: str, *, state: str = "Success", region: str | None = None) -> bytes:
    """CI's TaskFinish callback of `job_id` in `state`, its input in the bucket the COS keys may
    read, in `region` where given (CI's own says ap-chongqing)."""
    body = re.sub(r"<JobId>[^<]*</JobId>", f"<JobId>{job_id}</JobId>", _CALLBACK)
    body = re.sub(r"<State>[^<]*</State>", f"<State>{state}</State>", body)
    if region is not None:
        body = re.sub(
            r"(<Input>.*?<Region>)[^<]*(</Region>)", rf"\g<1>{region}\g<2>", body, flags=re.S
        )
    return body.encode()


def received(committer: Committer, body: bytes, clock: Clock) -> Receipt:
    [stored] = store(committer, [detected(body, received_at=clock.now)], timeout_s=10).values()
    assert isinstance(stored, Receipt), stored
    return stored


def files(engine: Engine, job_id: str) -> list[str | None]:
    file, jobs = models.JobFile, models.Job
    with engine.connect() as connection:
        return list(
            connection.execute(
                select(file.object)
                .join(jobs, jobs.id == file.job_pk)
                .where(jobs.job_id == job_id)
                .order_by(file.position)
            ).scalars()
        )


def test_a_forged_success_the_provider_contradicts_ends_as_the_provider_says(
    engine: Engine,
    clock: Clock,
    fake: Callable[..., FakeProviders],
    poller_for: Callable[..., Poller],
    confirming: Committer,
) -> None:
    providers = fake(
        ci={
            "j-forged": [
                replying(answer_of(CI, "describe_media_job_running.xml", "j-forged")),
                replying(answer_of(CI, "describe_media_job_failed.xml", "j-forged")),
            ]
        }
    )
    poller = poller_for(providers, storing=confirming)

    forged = received(confirming, ci_callback("j-forged"), clock)

    assert forged.outcome is Outcome.UNCONFIRMED
    assert job(engine, "j-forged")["state"] == "submitted"
    assert poller.run_once() == 1  # at once: not STEMHOOK_POLL_AFTER later
    running = watch_of(engine, "j-forged")
    assert (running["state"], running["status"], running["polls"]) == ("running", "polling", 1)
    assert delivery(engine, forged.delivery_id) == ("unconfirmed", None)

    clock.now = running["run_after"]
    assert poller.run_once() == 1

    failed = job(engine, "j-forged")
    # The provider's fields, nothing of the callback's: its outputs were never queued.
    assert (failed["state"], failed["error_code"], failed["error_message"]) == (
        "failed",
        "InvalidInput",
        "The input file has no audio stream.",
    )
    assert (failed["user_data"], failed["input_object"]) == ("retry-3", "input/broken.mp3")
    assert files(engine, "j-forged") == []
    assert delivery(engine, forged.delivery_id) == (
        "rejected",
        "the provider says failed; the callback claimed succeeded (job j-forged)",
    )
    assert watch_of(engine, "j-forged")["status"] == "done"
    assert providers.ci.asked == ["j-forged", "j-forged"]


def test_a_true_success_ends_succeeded_by_the_provider_s_answer(
    engine: Engine,
    clock: Clock,
    fake: Callable[..., FakeProviders],
    poller_for: Callable[..., Poller],
    confirming: Committer,
) -> None:
    providers = fake(
        ci={"j-true": [replying(answer_of(CI, "describe_media_job_success.xml", "j-true"))]}
    )
    poller = poller_for(providers, storing=confirming)

    true = received(confirming, ci_callback("j-true"), clock)
    assert poller.run_once() == 1

    succeeded = job(engine, "j-true")
    assert succeeded["state"] == "succeeded"
    with engine.connect() as connection:
        answered = connection.execute(
            select(models.Delivery.id).where(models.Delivery.endpoint == "poll/tencent-ci")
        ).scalar_one()
    # Merged from the poll's answer, files included; the callback only agreed with it.
    assert succeeded["state_delivery_id"] == succeeded["outputs_delivery_id"] == answered
    assert files(engine, "j-true") == [output["object"] for output in succeeded["outputs"]]
    assert delivery(engine, true.delivery_id) == ("duplicate", None)
    done = watch_of(engine, "j-true")
    assert (done["status"], done["polls"]) == ("done", 1)

    # The same callback again (CI does not retry, but a sender may): judged at once.
    again = received(confirming, ci_callback("j-true"), clock)
    assert again.outcome is Outcome.DUPLICATE
    assert poller.run_once() == 0
    assert providers.ci.asked == ["j-true"]

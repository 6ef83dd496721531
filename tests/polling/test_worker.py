"""The poller against fake provider APIs on loopback, on SQLite and PostgreSQL: a job whose
callback never came is found out by asking its provider, merged as its callback would be, its
files queued; failures are retried with backoff and never stop the worker, and a watch ended by a
callback meanwhile stays ended."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select, update

from app import models
from app.ingest.admission import admit
from app.polling.schedule import RETRY_BASE, RETRY_CAP
from app.polling.worker import Poller
from app.providers.model import Provider
from app.providers.registry import poll_endpoint
from tests.api.payloads import suno_json
from tests.fetching.servers import Handler
from tests.ingest.batches import stored
from tests.ingest.submissions import detected
from tests.mirror.conftest import Clock
from tests.polling.conftest import (
    BUCKET,
    MEDIA_LAB_KEYS,
    REGION,
    FakeProviders,
    answer_of,
    expect,
    loopback_fetcher,
    replying,
    watch_of,
)

Fake = Callable[..., FakeProviders]
PollerFor = Callable[..., Poller]
SUNO, MEDIA_LAB, CI = Provider.SUNO, Provider.MEDIA_LAB, Provider.TENCENT_CI
# Far above what a quiet machine needs; waited for by looking, never slept through.
PATIENCE_S = 60


def due(engine: Engine, clock: Clock, *job_ids: str) -> None:
    """The clock moved to the watches' next polls."""
    for job_id in job_ids:
        run_after = watch_of(engine, job_id)["run_after"]
        assert run_after is not None
        clock.now = max(clock.now, run_after)


def files_of(engine: Engine, job_id: str) -> list[tuple[int, str | None, str]]:
    file, job = models.JobFile, models.Job
    with engine.connect() as connection:
        rows = connection.execute(
            select(file.position, file.url, file.status)
            .join(job, job.id == file.job_pk)
            .where(job.job_id == job_id)
            .order_by(file.position)
        )
        return [tuple(row) for row in rows]


def deliveries(engine: Engine) -> list[tuple[str, str | None, str, dict[str, str]]]:
    delivery = models.Delivery
    with engine.connect() as connection:
        rows = connection.execute(
            select(
                delivery.endpoint, delivery.content_type, delivery.outcome, delivery.headers
            ).order_by(delivery.id)
        )
        return [tuple(row) for row in rows]


def test_a_suno_task_whose_callback_never_came_is_polled_until_it_succeeds(
    engine: Engine, clock: Clock, fake: Fake, poller_for: PollerFor
) -> None:
    providers = fake(
        suno={
            "t-1": [
                replying(answer_of(SUNO, "record_info_pending.json", "t-1")),
                replying(answer_of(SUNO, "record_info_split_stem.json", "t-1")),
            ]
        }
    )
    poller = poller_for(providers)
    expect(engine, SUNO, "t-1", at=clock.now)

    assert poller.run_once() == 0  # not overdue yet
    due(engine, clock, "t-1")
    assert poller.run_once() == 1

    pending = watch_of(engine, "t-1")
    assert pending["state"] == "submitted"
    assert (pending["status"], pending["polls"], pending["last_error"]) == ("polling", 1, None)
    assert pending["last_polled_at"] == clock.now
    assert RETRY_BASE / 2 <= pending["run_after"] - clock.now <= RETRY_BASE
    assert poller.run_once() == 0  # not before its backoff

    due(engine, clock, "t-1")
    assert poller.run_once() == 1

    done = watch_of(engine, "t-1")
    assert (done["state"], done["status"], done["polls"]) == ("succeeded", "done", 2)
    assert (done["run_after"], done["leased_by"], done["last_polled_at"]) == (None, None, clock.now)
    stems = files_of(engine, "t-1")
    assert len(stems) == 13
    assert {status for _, _, status in stems} == {"pending"}
    assert stems[0][1] == "https://file.aiquickdraw.com/s/e8f0_origin.mp3"
    assert providers.suno.asked == ["t-1", "t-1"]
    assert [row[:3] for row in deliveries(engine)] == [
        # PENDING is the registered job's first word (its kind and provider state), then SUCCESS.
        (poll_endpoint(SUNO), "application/json", "accepted"),
        (poll_endpoint(SUNO), "application/json", "accepted"),
    ]


def test_a_suno_task_that_failed_ends_failed(
    engine: Engine, clock: Clock, fake: Fake, poller_for: PollerFor
) -> None:
    failed = answer_of(SUNO, "record_info_generate_audio_failed.json", "t-1")
    poller = poller_for(fake(suno={"t-1": [replying(failed)]}))
    expect(engine, SUNO, "t-1", at=clock.now)
    due(engine, clock, "t-1")

    poller.run_once()

    assert watch_of(engine, "t-1")["state"] == "failed"
    assert watch_of(engine, "t-1")["status"] == "done"
    assert files_of(engine, "t-1") == []


def test_a_media_lab_job_is_asked_with_getjob_until_it_completes(
    engine: Engine, clock: Clock, fake: Fake, poller_for: PollerFor
) -> None:
    providers = fake(
        media_lab={
            "m-1": [
                replying(answer_of(MEDIA_LAB, "get_job_running.json", "m-1")),
                replying(answer_of(MEDIA_LAB, "get_job_completed.json", "m-1")),
            ]
        }
    )
    poller = poller_for(providers)
    expect(engine, MEDIA_LAB, "m-1", at=clock.now)

    due(engine, clock, "m-1")
    poller.run_once()
    assert watch_of(engine, "m-1")["state"] == "running"
    due(engine, clock, "m-1")
    poller.run_once()

    assert watch_of(engine, "m-1")["state"] == "succeeded"
    assert watch_of(engine, "m-1")["status"] == "done"
    assert providers.media_lab.asked == ["m-1", "m-1"]
    # What is stored is the answer, never the request that carried the keys.
    with engine.connect() as connection:
        stored_rows = connection.execute(select(models.Delivery.headers, models.Delivery.body))
        for headers, body in stored_rows:
            assert set(headers) == {"content-type", "content-length"}
            assert MEDIA_LAB_KEYS.secret_key.encode() not in body


def test_a_ci_job_is_described_with_a_signed_request_until_it_succeeds(
    engine: Engine, clock: Clock, fake: Fake, poller_for: PollerFor
) -> None:
    job = "j8d121820f5e411ec926ef19d53ba9c6f"
    providers = fake(
        ci={
            job: [
                replying(answer_of(CI, "describe_media_job_running.xml", job)),
                replying(answer_of(CI, "describe_media_job_success.xml", job)),
            ]
        }
    )
    poller = poller_for(providers)
    expect(engine, CI, job, at=clock.now, bucket=BUCKET, region=REGION)

    due(engine, clock, job)
    poller.run_once()
    running = watch_of(engine, job)
    assert (running["state"], running["last_error"]) == ("running", None)
    due(engine, clock, job)
    poller.run_once()

    assert watch_of(engine, job)["state"] == "succeeded"
    assert providers.ci.asked == [job, job]
    hosts = {headers["host"] for _, headers in providers.server.requests}
    assert hosts == {f"{BUCKET}.ci.{REGION}.myqcloud.com"}


def test_a_ci_job_in_a_bucket_the_keys_may_not_read_is_not_asked_about(
    engine: Engine, clock: Clock, fake: Fake, poller_for: PollerFor
) -> None:
    providers = fake(ci={"j1": [replying(b"<Response/>")]})
    poller = poller_for(providers)
    expect(engine, CI, "j1", at=clock.now, bucket="other-123456789", region=REGION)
    due(engine, clock, "j1")

    poller.run_once()

    watch = watch_of(engine, "j1")
    assert "STEMHOOK_COS_BUCKETS" in watch["last_error"]
    assert (watch["polls"], watch["status"]) == (0, "polling")
    assert providers.server.requests == []


def test_a_wrong_key_is_the_watchs_error_and_the_worker_polls_on(
    engine: Engine, clock: Clock, fake: Fake, poller_for: PollerFor
) -> None:
    """HTTP 401 from a wrong bearer key, and Suno's own `code` 401 in a 200 answer."""
    providers = fake(
        suno={
            "in-body": [replying(answer_of(SUNO, "record_info_wrong_key.json", "in-body"))],
            "t-ok": [replying(answer_of(SUNO, "record_info_separate_vocal.json", "t-ok"))],
        },
        media_lab={"m-1": [replying(answer_of(MEDIA_LAB, "get_job_completed.json", "m-1"))]},
    )
    wrong = poller_for(providers, apis=providers.apis(suno_key="wrong"))
    for job_id in ("in-body", "t-ok"):
        expect(engine, SUNO, job_id, at=clock.now)
    expect(engine, MEDIA_LAB, "m-1", at=clock.now)
    due(engine, clock, "t-ok")

    assert wrong.run_once() == 3
    assert watch_of(engine, "t-ok")["last_error"] == (
        "HTTP 401 from 127.0.0.1: the credentials were refused"
    )
    assert watch_of(engine, "m-1")["state"] == "succeeded"
    right = poller_for(providers)
    due(engine, clock, "in-body", "t-ok")
    assert right.run_once() == 2

    in_body = watch_of(engine, "in-body")
    assert (in_body["state"], in_body["status"], in_body["polls"]) == ("submitted", "polling", 2)
    assert in_body["last_error"] == (
        "record-info answered code 401: 'Unauthorized - Authentication credentials are missing or"
        " invalid'"
    )
    assert watch_of(engine, "t-ok")["state"] == "succeeded"


@pytest.mark.parametrize("status", [429, 503])
def test_a_retry_after_is_waited_for_when_longer_than_the_backoff(
    engine: Engine, clock: Clock, fake: Fake, poller_for: PollerFor, status: int
) -> None:
    busy = replying(b"{}", status, {"Retry-After": "600"})
    poller = poller_for(fake(suno={"t-1": [busy]}))
    expect(engine, SUNO, "t-1", at=clock.now)
    due(engine, clock, "t-1")

    poller.run_once()

    watch = watch_of(engine, "t-1")
    assert watch["run_after"] == clock.now + timedelta(seconds=600)
    assert (watch["status"], watch["polls"]) == ("polling", 1)
    assert watch["last_error"] == f"HTTP {status} from 127.0.0.1"
    assert deliveries(engine) == []


def test_a_failing_provider_is_asked_again_after_the_backoff(
    engine: Engine, clock: Clock, fake: Fake, poller_for: PollerFor
) -> None:
    answers = [replying(b"oops", 500)] * 3 + [
        replying(answer_of(SUNO, "record_info_separate_vocal.json", "t-1"))
    ]
    poller = poller_for(fake(suno={"t-1": answers}))
    expect(engine, SUNO, "t-1", at=clock.now)
    waits = []
    for _ in range(3):
        due(engine, clock, "t-1")
        poller.run_once()
        watch = watch_of(engine, "t-1")
        assert watch["last_error"] == "HTTP 500 from 127.0.0.1"
        waits.append(watch["run_after"] - clock.now)
    due(engine, clock, "t-1")
    poller.run_once()

    for tries, wait in enumerate(waits, start=1):
        step = min(RETRY_CAP, RETRY_BASE * 2 ** (tries - 1))
        assert step / 2 <= wait <= step
    assert watch_of(engine, "t-1")["state"] == "succeeded"
    assert watch_of(engine, "t-1")["polls"] == 4


def test_a_provider_that_never_answers_is_retried(
    engine: Engine, clock: Clock, fake: Fake, poller_for: PollerFor
) -> None:
    providers = fake(suno={"t-1": [Handler.never_answer]})
    poller = poller_for(providers, fetcher=loopback_fetcher(read_timeout_s=0.2))
    expect(engine, SUNO, "t-1", at=clock.now)
    due(engine, clock, "t-1")

    poller.run_once()

    watch = watch_of(engine, "t-1")
    assert watch["last_error"] == "127.0.0.1: no answer in time (ReadTimeout)"
    assert (watch["status"], watch["polls"], watch["leased_by"]) == ("polling", 1, None)
    assert watch["run_after"] > clock.now


def test_a_silent_provider_holds_up_none_of_another_providers_polls(
    engine: Engine, clock: Clock, fake: Fake, poller_for: PollerFor
) -> None:
    """Suno's API takes every Suno place and answers nothing until released; Media Lab's job is
    polled to its end meanwhile."""
    asked = threading.Semaphore(0)

    def silent(handler: Handler) -> None:
        asked.release()
        Handler.never_answer(handler)

    suno_jobs = {f"t-{n}": [silent] for n in range(3)}
    completed = answer_of(MEDIA_LAB, "get_job_completed.json", "m-1")
    providers = fake(suno=suno_jobs, media_lab={"m-1": [replying(completed)]})
    poller = poller_for(providers)
    for job_id in suno_jobs:
        expect(engine, SUNO, job_id, at=clock.now)
    clock.now += timedelta(minutes=5)
    expect(engine, MEDIA_LAB, "m-1", at=clock.now)  # due after every Suno task
    clock.now += timedelta(minutes=10)
    worker = threading.Thread(target=poller.run)
    worker.start()
    try:
        for _ in range(2):  # both Suno places taken and waiting
            assert asked.acquire(timeout=PATIENCE_S)
        deadline = time.monotonic() + PATIENCE_S
        while watch_of(engine, "m-1")["state"] != "succeeded":
            assert time.monotonic() < deadline, "Media Lab's job was never polled"
            time.sleep(0.02)
        assert not providers.server.released.is_set()
        held_up = list(providers.suno.asked)
    finally:
        providers.server.released.set()
        poller.stop()
        worker.join()

    assert len(set(held_up)) == 2
    for job_id in held_up:
        assert watch_of(engine, job_id)["last_error"] is not None
        assert watch_of(engine, job_id)["leased_by"] is None


def test_a_job_finished_by_its_callback_while_polled_stays_finished(
    engine: Engine, clock: Clock, fake: Fake, poller_for: PollerFor
) -> None:
    pending = answer_of(SUNO, "record_info_pending.json", "t-1")

    def callback_first(handler: Handler) -> None:
        intake = admit(detected(suno_json("t-1")), suno_key=None, max_jobs=10)
        with engine.begin() as connection:
            stored(connection, [intake])
        replying(pending)(handler)

    poller = poller_for(fake(suno={"t-1": [callback_first]}))
    expect(engine, SUNO, "t-1", at=clock.now)
    due(engine, clock, "t-1")

    assert poller.run_once() == 1

    watch = watch_of(engine, "t-1")
    assert (watch["state"], watch["status"], watch["run_after"]) == ("succeeded", "done", None)
    assert (watch["polls"], watch["leased_by"]) == (0, None)
    assert [row[2] for row in deliveries(engine)] == ["accepted", "duplicate"]


def test_a_watch_still_unfinished_at_its_give_up_time_is_given_up_until_polled_on_request(
    engine: Engine, clock: Clock, fake: Fake, poller_for: PollerFor
) -> None:
    pending = replying(answer_of(SUNO, "record_info_pending.json", "t-1"))
    poller = poller_for(fake(suno={"t-1": [pending]}))
    expect(engine, SUNO, "t-1", at=clock.now)
    with engine.begin() as connection:
        connection.execute(
            update(models.JobWatch).values(give_up_at=clock.now + timedelta(minutes=10, seconds=5))
        )
    due(engine, clock, "t-1")

    poller.run_once()
    given_up = watch_of(engine, "t-1")
    clock.now += timedelta(days=3)
    polls_after = poller.run_once()
    with engine.begin() as connection:  # POST .../poll: due now
        connection.execute(update(models.JobWatch).values(run_after=clock.now))
    poller.run_once()

    assert (given_up["status"], given_up["run_after"], given_up["polls"]) == ("gave_up", None, 1)
    assert polls_after == 0
    again = watch_of(engine, "t-1")
    assert (again["status"], again["run_after"], again["polls"]) == ("gave_up", None, 2)


def test_a_provider_without_credentials_is_not_asked_and_its_watch_waits(
    engine: Engine, clock: Clock, fake: Fake, poller_for: PollerFor
) -> None:
    completed = replying(answer_of(MEDIA_LAB, "get_job_completed.json", "m-1"))
    providers = fake(media_lab={"m-1": [completed]})
    suno_only = poller_for(providers, providers=frozenset({SUNO}))
    expect(engine, MEDIA_LAB, "m-1", at=clock.now)
    due(engine, clock, "m-1")

    assert suno_only.run_once() == 0

    watch = watch_of(engine, "m-1")
    assert (watch["status"], watch["polls"], watch["leased_by"]) == ("waiting", 0, None)
    assert watch["run_after"] == clock.now + timedelta(minutes=10)
    assert providers.server.requests == []
    due(engine, clock, "m-1")
    poller_for(providers).run_once()  # configured later: polled
    assert watch_of(engine, "m-1")["state"] == "succeeded"


def test_a_due_watch_of_a_finished_job_ends_without_a_poll(
    engine: Engine, clock: Clock, fake: Fake, poller_for: PollerFor
) -> None:
    providers = fake(suno={})
    job_pk = expect(engine, SUNO, "t-1", at=clock.now)
    with engine.begin() as connection:
        connection.execute(
            update(models.Job).where(models.Job.id == job_pk).values(state="succeeded")
        )
    due(engine, clock, "t-1")

    assert poller_for(providers).run_once() == 0

    assert watch_of(engine, "t-1")["status"] == "done"
    assert providers.server.requests == []

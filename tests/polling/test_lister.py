"""Listing a CI queue against a fake DescribeMediaJobs on loopback (signatures checked), on SQLite
and PostgreSQL: a job nobody registered and whose callback never came is found, watched and
polled if unfinished, recorded if final; pages and windows are followed so that every job is
listed once; failures keep the listing's place; one lister holds a queue at a time."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from app import models
from app.ingest.committer import Committer
from app.mirror.cos import CosKeys
from app.mirror.sources import MirrorPolicy
from app.polling.lister import QueueLister
from app.polling.listing import LAG
from app.polling.watches import DEFAULT_WATCH
from app.polling.worker import Poller
from app.providers.model import Provider
from app.providers.registry import poll_endpoint
from tests.fetching.servers import Handler
from tests.mirror.conftest import Clock
from tests.polling.conftest import (
    COS,
    LIST_OPTIONS,
    FakeProviders,
    answer_of,
    replying,
    watch_of,
)
from tests.polling.test_worker import deliveries, due, files_of

Fake = Callable[..., FakeProviders]
ListerFor = Callable[..., QueueLister]
CI = Provider.TENCENT_CI
EVERY = LIST_OPTIONS.every
# Far above what a quiet machine needs; waited for by looking, never slept through.
PATIENCE_S = 60


def closed(clock: Clock) -> datetime:
    """The last whole second a listing at the clock's time reaches."""
    return (clock.now - LAG).replace(microsecond=0)


def listing_of(engine: Engine) -> dict[str, Any]:
    row = models.CiListing
    with engine.connect() as connection:
        found = connection.execute(
            select(
                row.listed_to,
                row.window_end,
                row.next_token,
                row.pages,
                row.last_listed_at,
                row.last_error,
                row.run_after,
                row.leased_by,
            )
        ).one()
    return dict(found._mapping)


def jobs(engine: Engine) -> dict[str, tuple[str, int]]:
    """Each job's state and the deliveries that told of it."""
    job = models.Job
    with engine.connect() as connection:
        rows = connection.execute(select(job.job_id, job.state, job.deliveries))
        return {row.job_id: (row.state, row.deliveries) for row in rows}


def test_a_job_nobody_registered_found_unfinished_is_watched_and_polled_in_its_queues_bucket(
    engine: Engine,
    clock: Clock,
    fake: Fake,
    lister_for: ListerFor,
    poller_for: Callable[..., Poller],
) -> None:
    succeeded = answer_of(CI, "describe_media_job_voice_separate.xml", "jq1")
    providers = fake(ci={"jq1": [replying(succeeded)]})
    providers.queue.add("jq1", closed(clock) - timedelta(minutes=5))
    lister = lister_for(providers)

    assert lister.run_once() == 1

    assert jobs(engine) == {"jq1": ("submitted", 1)}
    assert [row[:3] for row in deliveries(engine)] == [
        (poll_endpoint(CI), "application/xml", "accepted")
    ]
    watched = watch_of(engine, "jq1")
    assert (watched["status"], watched["run_after"]) == (
        "waiting",
        clock.now + DEFAULT_WATCH.poll_after,
    )
    listing = listing_of(engine)
    assert (listing["listed_to"], listing["next_token"], listing["last_error"]) == (
        closed(clock),
        None,
        None,
    )
    assert listing["run_after"] == closed(clock) + EVERY + LAG
    assert (listing["last_listed_at"], listing["leased_by"]) == (clock.now, None)
    assert lister.run_once() == 0  # nothing due until the next window closes

    # The listed job names no input bucket: its poll is asked in its queue's (signed for it).
    due(engine, clock, "jq1")
    assert poller_for(providers).run_once() == 1

    assert jobs(engine) == {"jq1": ("succeeded", 2)}
    assert watch_of(engine, "jq1")["status"] == "done"
    assert providers.ci.asked == ["jq1"]
    # Recorded as its callback's would be (skipped: this committer has no COS keys to fetch).
    assert [status for _, _, status in files_of(engine, "jq1")] == ["skipped", "skipped"]


def test_a_job_found_final_is_recorded_with_its_files_and_not_watched(
    engine: Engine, clock: Clock, fake: Fake, lister_for: ListerFor
) -> None:
    providers = fake()
    providers.queue.add("jq2", closed(clock) - timedelta(minutes=1), final=True)

    lister_for(providers).run_once()

    assert jobs(engine) == {"jq2": ("succeeded", 1)}
    assert [status for _, _, status in files_of(engine, "jq2")] == ["skipped", "skipped"]
    with engine.connect() as connection:
        assert connection.execute(select(models.JobWatch.id)).all() == []


def test_pages_are_followed_each_a_delivery_and_another_lister_goes_on_where_one_stopped(
    engine: Engine, clock: Clock, fake: Fake, lister_for: ListerFor
) -> None:
    providers = fake()
    for number in range(5):
        providers.queue.add(f"jp{number}", closed(clock) - timedelta(minutes=9 - number))
    first, second = lister_for(providers, worker="l1"), lister_for(providers, worker="l2")

    assert first.run_once() == 1
    paging = listing_of(engine)
    assert (paging["window_end"], paging["next_token"], paging["pages"]) == (closed(clock), "2", 1)
    assert paging["run_after"] == clock.now  # the next page is due at once
    assert second.run_once() == 1  # another process (or a restart) goes on from the token
    assert first.run_once() == 1
    assert first.run_once() == second.run_once() == 0

    asked = providers.queue.asked
    assert [params.get("nextToken") for params in asked] == [None, "2", "4"]
    assert {(params["startCreationTime"], params["endCreationTime"]) for params in asked} == {
        (_ci_text(closed(clock) - EVERY - timedelta(seconds=1)), _ci_text(closed(clock)))
    }
    assert {params["size"] for params in asked} == {"2"}
    assert jobs(engine) == {f"jp{number}": ("submitted", 1) for number in range(5)}
    assert [row[:3] for row in deliveries(engine)] == [
        (poll_endpoint(CI), "application/xml", "accepted")
    ] * 3
    done = listing_of(engine)
    assert (done["listed_to"], done["window_end"], done["next_token"], done["pages"]) == (
        closed(clock),
        None,
        None,
        0,
    )


def test_each_job_is_listed_once_window_after_window_those_at_a_windows_edge_included(
    engine: Engine, clock: Clock, fake: Fake, lister_for: ListerFor
) -> None:
    providers = fake()
    edge = closed(clock)
    providers.queue.add("before-edge", edge - timedelta(seconds=1))
    providers.queue.add("at-edge", edge)
    providers.queue.add("next-window", edge + timedelta(minutes=5))
    providers.queue.add("at-next-edge", edge + EVERY)
    lister = lister_for(providers)

    lister.run_once()
    assert set(jobs(engine)) == {"before-edge"}

    clock.now += EVERY - timedelta(seconds=1)
    assert lister.run_once() == 0  # the next window has not closed
    clock.now += timedelta(seconds=1)
    assert lister.run_once() == 1
    assert set(jobs(engine)) == {"before-edge", "at-edge", "next-window"}

    clock.now += 3 * EVERY  # a pause (stemhook down): the windows missed are listed at once
    assert lister.run_once() == 1
    assert lister.run_once() == 1
    assert lister.run_once() == 1
    assert lister.run_once() == 0
    assert {job_id: told for job_id, (_, told) in jobs(engine).items()} == {
        "before-edge": 1,
        "at-edge": 1,
        "next-window": 1,
        "at-next-edge": 1,
    }
    assert len(providers.queue.asked) == 5
    assert listing_of(engine)["listed_to"] == edge + 4 * EVERY


def test_a_page_that_failed_is_asked_for_again_after_the_providers_retry_after(
    engine: Engine, clock: Clock, fake: Fake, lister_for: ListerFor
) -> None:
    providers = fake()
    providers.queue.add("jr", closed(clock) - timedelta(minutes=1))
    providers.queue.answers.append(replying(b"busy", 503, {"Retry-After": "120"}))
    lister = lister_for(providers)

    lister.run_once()

    failed = listing_of(engine)
    assert failed["last_error"] is not None and "503" in failed["last_error"]
    assert failed["listed_to"] == closed(clock) - EVERY  # the window it began, kept
    assert failed["run_after"] == clock.now + timedelta(seconds=120)
    assert deliveries(engine) == [] and jobs(engine) == {}
    assert lister.run_once() == 0

    clock.now += timedelta(seconds=120)
    assert lister.run_once() == 1
    assert jobs(engine) == {"jr": ("submitted", 1)}
    assert listing_of(engine)["last_error"] is None
    assert [params["startCreationTime"] for params in providers.queue.asked] == [
        providers.queue.asked[0]["startCreationTime"]
    ] * 2


def test_keys_ci_refuses_are_the_listings_error_and_nothing_is_stored(
    engine: Engine, clock: Clock, fake: Fake, lister_for: ListerFor
) -> None:
    providers = fake()
    providers.queue.add("jk", closed(clock) - timedelta(minutes=1))
    wrong = providers.apis(cos=CosKeys(COS.secret_id, "not-the-secret-key"))

    lister_for(providers, apis=wrong).run_once()

    listing = listing_of(engine)
    assert listing["last_error"] == "HTTP 403 from 127.0.0.1: the credentials were refused"
    assert (listing["listed_to"], listing["window_end"]) == (closed(clock) - EVERY, None)
    assert deliveries(engine) == []


@pytest.fixture
def strict_committer(engine: Engine) -> Committer:
    return Committer(
        engine,
        suno_key=None,
        timeout_s=10,
        max_jobs=2,
        mirror=MirrorPolicy(enabled=True, cos=False),
        watch=DEFAULT_WATCH,
    )


def test_a_page_with_more_jobs_than_a_delivery_may_create_is_kept_rejected_and_asked_again(
    engine: Engine,
    clock: Clock,
    fake: Fake,
    lister_for: ListerFor,
    strict_committer: Committer,
) -> None:
    providers = fake()
    for number in range(3):
        providers.queue.add(f"jm{number}", closed(clock) - timedelta(minutes=3 - number))
    providers.queue.ignore_size = True  # a provider answering more than it was asked for
    try:
        lister_for(providers, storing=strict_committer).run_once()
    finally:
        strict_committer.close()

    why = (
        "the delivery lists 3 jobs, more than the 2 one delivery may create"
        " (STEMHOOK_MAX_JOBS_PER_DELIVERY)"
    )
    assert [row[:3] for row in deliveries(engine)] == [
        (poll_endpoint(CI), "application/xml", "rejected")
    ]
    assert jobs(engine) == {}
    listing = listing_of(engine)
    assert (listing["last_error"], listing["listed_to"]) == (why, closed(clock) - EVERY)


def test_a_page_listing_no_job_is_not_stored(
    engine: Engine, clock: Clock, fake: Fake, lister_for: ListerFor
) -> None:
    providers = fake()

    assert lister_for(providers).run_once() == 1

    assert deliveries(engine) == []
    assert (listing_of(engine)["listed_to"], listing_of(engine)["last_error"]) == (
        closed(clock),
        None,
    )


def test_an_error_answered_as_a_page_is_kept_rejected_with_what_ci_said(
    engine: Engine, clock: Clock, fake: Fake, lister_for: ListerFor
) -> None:
    providers = fake()
    error = answer_of(CI, "answer_error.xml", "-")
    providers.queue.answers.append(replying(error))

    lister_for(providers).run_once()

    [(endpoint, _, outcome, _)] = deliveries(engine)
    assert (endpoint, outcome) == (poll_endpoint(CI), "rejected")
    listing = listing_of(engine)
    assert listing["last_error"] is not None
    assert listing["last_error"].startswith("CI answered error ")
    assert listing["listed_to"] == closed(clock) - EVERY


def test_a_queue_being_listed_by_one_lister_is_not_listed_by_another(
    engine: Engine, clock: Clock, fake: Fake, lister_for: ListerFor
) -> None:
    providers = fake()
    providers.queue.add("jl", closed(clock) - timedelta(minutes=1))
    asked, release = threading.Event(), threading.Event()

    def held(handler: Handler) -> None:
        asked.set()
        release.wait(PATIENCE_S)
        providers.queue.answer_page(handler)

    providers.queue.answers.append(held)
    first, second = lister_for(providers, worker="l1"), lister_for(providers, worker="l2")
    listing = threading.Thread(target=first.run_once)
    listing.start()
    try:
        assert asked.wait(PATIENCE_S)
        assert second.run_once() == 0
    finally:
        release.set()
        listing.join(PATIENCE_S)

    assert len(providers.queue.asked) == 1
    assert jobs(engine) == {"jl": ("submitted", 1)}
    assert listing_of(engine)["leased_by"] is None


def _ci_text(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S%z")

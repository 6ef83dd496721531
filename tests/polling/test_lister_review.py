"""Review of the CI queue listing (STEMHOOK_CI_QUEUES, merge 1b2d13d): failing tests, one per bug.

Each test says what should hold; each fails on main as merged."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine

from app.polling import listing as listing_module
from app.polling.lister import QueueLister
from app.polling.listing import LAG
from app.providers.model import Provider
from tests.fetching.servers import Handler
from tests.mirror.conftest import Clock
from tests.polling.conftest import (
    LIST_OPTIONS,
    FakeProviders,
    replying,
)
from tests.polling.test_lister import jobs, listing_of
from tests.polling.test_worker import deliveries

Fake = Callable[..., FakeProviders]
ListerFor = Callable[..., QueueLister]
CI = Provider.TENCENT_CI
EVERY = LIST_OPTIONS.every


def closed(clock: Clock) -> datetime:
    return (clock.now - LAG).replace(microsecond=0)


def _until_due(engine: Engine, clock: Clock) -> None:
    run_after = listing_of(engine)["run_after"]
    assert run_after is not None
    clock.now = max(clock.now, run_after)


# --- 1. A 2xx answer that is not a DescribeMediaJobs <Response> is taken as an empty last page.


@pytest.mark.parametrize(
    "body",
    [
        b"<html><body>Service temporarily in maintenance</body></html>",
        b'{"code": 0, "message": "ok"}',
    ],
    ids=["xml-not-response", "json-object"],
)
def test_a_2xx_answer_that_is_not_a_page_keeps_the_listings_place(
    engine: Engine, clock: Clock, fake: Fake, lister_for: ListerFor, body: bytes
) -> None:
    providers = fake()
    providers.queue.add("jx", closed(clock) - timedelta(minutes=1))
    providers.queue.answers.append(replying(body))
    lister = lister_for(providers)

    lister.run_once()

    listing = listing_of(engine)
    # On main: listed_to moves to the window's end, last_error None, and "jx" is never listed.
    assert listing["last_error"] is not None
    assert listing["listed_to"] == closed(clock) - EVERY
    _until_due(engine, clock)
    lister.run_once()
    assert "jx" in jobs(engine)


# --- 2. A stored page the parsers refuse stalls the queue for ever, a new copy stored each retry.


def _poison(providers: FakeProviders, job_id: str, at: datetime) -> None:
    """A job of the queue whose State the parser does not know: its page is rejected."""
    providers.queue.add(job_id, at)
    created, detail = providers.queue.jobs[-1]
    providers.queue.jobs[-1] = (
        created,
        detail.replace("<State>Submitted</State>", "<State>Retrying</State>"),
    )


def test_a_rejected_page_is_not_stored_again_at_every_retry(
    engine: Engine, clock: Clock, fake: Fake, lister_for: ListerFor
) -> None:
    providers = fake()
    _poison(providers, "jbad", closed(clock) - timedelta(minutes=2))
    lister = lister_for(providers)

    lister.run_once()
    for _ in range(6):
        _until_due(engine, clock)
        lister.run_once()

    rejected = [row for row in deliveries(engine) if row[2] == "rejected"]
    # On main: 7 rejected copies of the same page (one a retry, every 30 min for ever).
    assert len(rejected) == 1


def test_a_rejected_page_does_not_stop_later_jobs_of_the_queue_being_found(
    engine: Engine, clock: Clock, fake: Fake, lister_for: ListerFor
) -> None:
    providers = fake()
    _poison(providers, "jbad", closed(clock) - timedelta(minutes=2))
    providers.queue.add("jlater", closed(clock) + timedelta(minutes=5))
    lister = lister_for(providers)

    lister.run_once()
    for _ in range(8):  # hours of retries
        clock.now = max(clock.now + EVERY, listing_of(engine)["run_after"])
        lister.run_once()

    # The rejected page is kept (replayable once the parser knows the state); on main the
    # listing stays on it for ever and "jlater" (and every later job) is never listed.
    assert "jlater" in jobs(engine)
    assert [row[2] for row in deliveries(engine)].count("accepted") >= 1


# --- 3. A provider naming as next page the token it was asked with: 500 pages back to back.


def test_a_next_token_equal_to_the_one_asked_with_is_not_followed(
    engine: Engine, clock: Clock, fake: Fake, lister_for: ListerFor
) -> None:
    providers = fake()
    providers.queue.add("jloop", closed(clock) - timedelta(minutes=1))
    [(_, detail)] = providers.queue.jobs
    page = f"<Response>{detail}<NextToken>same</NextToken></Response>".encode()

    def same_token_for_ever(handler: Handler) -> None:
        replying(page)(handler)

    providers.queue.answer_page = same_token_for_ever  # type: ignore[method-assign]
    lister = lister_for(providers)

    for _ in range(10):
        lister.run_once()

    asked_again = [p for p in providers.queue.asked if p.get("nextToken") == "same"]
    # On main: every run asks again at once (up to 500 pages a window, every window), and each
    # answer is stored: 10 deliveries of the same page here.
    assert len(asked_again) <= 1
    assert len(deliveries(engine)) <= 2
    assert listing_of(engine)["last_error"] is not None


# --- 4. A window cut after MAX_PAGES loses its later jobs with no trace that lasts.


def test_a_cut_window_is_reported_in_the_log(
    engine: Engine,
    clock: Clock,
    fake: Fake,
    lister_for: ListerFor,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(listing_module, "MAX_PAGES", 2)
    providers = fake()
    for number in range(5):  # pages of 2: three pages, cut after two
        providers.queue.add(f"jc{number}", closed(clock) - timedelta(minutes=9 - number))
    lister = lister_for(providers)

    with caplog.at_level(logging.WARNING):
        lister.run_once()
        lister.run_once()
        clock.now += EVERY
        lister.run_once()  # the next window: last_error cleared

    assert "jc4" not in jobs(engine)  # lost: created in the window, after the cut
    assert listing_of(engine)["last_error"] is None
    # On main nothing is logged: the cut's only trace was last_error, overwritten at once.
    assert any("cut" in record.getMessage() for record in caplog.records)

"""Listing a CI queue whose provider answers what a page should not be, on SQLite and
PostgreSQL: an answer that is not a page keeps the listing's place and is stored once; a page
whose jobs are not merged is stored once and listed past; a next page that is the one asked for
ends the window; a window cut after its most pages says so in the log."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine, select

from app import models
from app.polling import listing as listing_module
from tests.fetching.servers import Handler
from tests.mirror.conftest import Clock
from tests.polling.conftest import (
    FakeProviders,
    replying,
)
from tests.polling.test_lister import EVERY, Fake, ListerFor, closed, jobs, listing_of
from tests.polling.test_worker import deliveries


def _until_due(engine: Engine, clock: Clock) -> None:
    run_after = listing_of(engine)["run_after"]
    assert run_after is not None
    clock.now = max(clock.now, run_after)


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
    assert listing["last_error"] is not None
    assert listing["last_error"].startswith("not a page of jobs: not a DescribeMediaJobs page")
    assert listing["listed_to"] == closed(clock) - EVERY
    _until_due(engine, clock)
    lister.run_once()
    assert "jx" in jobs(engine)


def test_an_answer_that_is_not_a_page_is_stored_on_the_pages_first_try_only(
    engine: Engine, clock: Clock, fake: Fake, lister_for: ListerFor
) -> None:
    providers = fake()
    providers.queue.add("jm", closed(clock) - timedelta(minutes=1))
    maintenance = b"<html><body>Service temporarily in maintenance</body></html>"
    providers.queue.answers += [replying(maintenance)] * 3
    lister = lister_for(providers)

    lister.run_once()
    for _ in range(3):
        _until_due(engine, clock)
        lister.run_once()

    assert len(providers.queue.asked) == 4
    assert [row[2] for row in deliveries(engine)] == ["rejected", "accepted"]
    assert jobs(engine) == {"jm": ("submitted", 1)}
    assert listing_of(engine)["last_error"] is None


def _poison(providers: FakeProviders, job_id: str, at: datetime) -> None:
    """A job of the queue whose State the parser does not know: its page is rejected."""
    providers.queue.add(job_id, at)
    created, detail = providers.queue.jobs[-1]
    providers.queue.jobs[-1] = (
        created,
        detail.replace("<State>Submitted</State>", "<State>Retrying</State>"),
    )


def test_a_page_with_a_job_the_parser_refuses_is_stored_once_and_listed_past(
    engine: Engine, clock: Clock, fake: Fake, lister_for: ListerFor
) -> None:
    providers = fake()
    _poison(providers, "jbad", closed(clock) - timedelta(minutes=2))
    lister = lister_for(providers)

    lister.run_once()

    with engine.connect() as connection:
        delivery_id = connection.execute(select(models.Delivery.id)).scalar_one()
    listing = listing_of(engine)
    assert listing["last_error"] is not None
    assert listing["last_error"].startswith(
        f"the page stored as delivery {delivery_id} was not merged (JobsDetail.State 'Retrying'"
    )
    assert listing["listed_to"] == closed(clock)
    for _ in range(6):
        _until_due(engine, clock)
        lister.run_once()
    assert [row[2] for row in deliveries(engine)] == ["rejected"]


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

    # The rejected page is kept (replayable once the parser knows the state); the listing goes on.
    assert "jlater" in jobs(engine)
    assert [row[2] for row in deliveries(engine)].count("accepted") >= 1


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

    assert [p.get("nextToken") for p in providers.queue.asked] == [None, "same"]
    assert [row[2] for row in deliveries(engine)] == ["accepted", "duplicate"]
    listing = listing_of(engine)
    assert (listing["listed_to"], listing["window_end"]) == (closed(clock), None)
    assert listing["last_error"] is not None
    assert listing["last_error"].startswith("CI named the page asked for ('same') as the next one")


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
    # The row's error is overwritten by the next window's; the log keeps it.
    assert any("was cut after 2 pages" in record.getMessage() for record in caplog.records)

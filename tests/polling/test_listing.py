"""What a CI queue's listing asks for next and what its row becomes: windows of creation time,
oldest first, each listed once it has closed, paged through, and retried where it failed."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from app.polling.listing import (
    LAG,
    MAX_PAGES,
    Listing,
    Window,
    failed,
    listed,
    not_yet,
    window,
)
from app.polling.schedule import RETRY_BASE

NOW = datetime(2026, 12, 12, 10, 30, 30, 500_000, tzinfo=UTC)
EVERY = timedelta(minutes=10)
LOOKBACK = timedelta(hours=48)
CLOSED = datetime(2026, 12, 12, 10, 29, 30, tzinfo=UTC)  # NOW - LAG, in whole seconds


def test_a_first_listing_begins_lookback_before_the_last_closed_second() -> None:
    first = window(Listing(), now=NOW, every=EVERY, lookback=LOOKBACK)

    assert first == Window(CLOSED - LOOKBACK, CLOSED - LOOKBACK + EVERY)


def test_windows_are_listed_one_after_another_while_catching_up_then_once_each_closes() -> None:
    listing, ends = Listing(), []
    while next_window := window(listing, now=NOW, every=EVERY, lookback=timedelta(minutes=25)):
        values, due = listed(next_window, next_token=None, now=NOW, every=EVERY)
        ends.append(values["listed_to"])
        listing = Listing(listed_to=values["listed_to"])
        if due > NOW:
            break

    caught_up = CLOSED - timedelta(minutes=5)
    assert ends == [CLOSED - timedelta(minutes=15), caught_up]
    assert due == caught_up + EVERY + LAG  # when the next whole window has closed
    before = due - timedelta(seconds=1)
    assert window(listing, now=before, every=EVERY, lookback=LOOKBACK) == Window(
        caught_up, caught_up + EVERY - timedelta(seconds=1)
    )
    assert window(listing, now=due, every=EVERY, lookback=LOOKBACK) == Window(
        caught_up, caught_up + EVERY
    )


def test_a_listing_with_no_closed_second_since_lists_nothing_until_the_next_window_closes() -> None:
    listing = Listing(listed_to=CLOSED)

    assert window(listing, now=NOW, every=EVERY, lookback=LOOKBACK) is None
    assert not_yet(CLOSED, now=NOW, every=EVERY) == ({}, CLOSED + EVERY + LAG)


def test_a_page_with_a_next_one_keeps_its_window_and_the_token_and_is_due_at_once() -> None:
    first = Window(CLOSED - EVERY, CLOSED)

    values, due = listed(first, next_token="t2", now=NOW, every=EVERY)

    assert due == NOW
    assert values == {
        "listed_to": CLOSED - EVERY,
        "window_end": CLOSED,
        "next_token": "t2",
        "pages": 1,
        "last_listed_at": NOW,
        "last_error": None,
        "attempts": 0,
    }
    paging = Listing(CLOSED - EVERY, CLOSED, "t2", pages=1)
    # Hours later (a restart), the same window goes on from its token.
    later = NOW + timedelta(hours=3)
    assert window(paging, now=later, every=EVERY, lookback=LOOKBACK) == Window(
        CLOSED - EVERY, CLOSED, "t2", 1
    )


def test_the_last_page_of_a_window_moves_the_listing_past_it() -> None:
    values, due = listed(
        Window(CLOSED - EVERY, CLOSED, "t2", 1), next_token=None, now=NOW, every=EVERY
    )

    assert values == {
        "listed_to": CLOSED,
        "window_end": None,
        "next_token": None,
        "pages": 0,
        "last_listed_at": NOW,
        "last_error": None,
        "attempts": 0,
    }
    assert due == CLOSED + EVERY + LAG


def test_a_window_that_never_ends_is_cut_and_says_so() -> None:
    endless = Window(CLOSED - EVERY, CLOSED, "t", MAX_PAGES - 1)

    values, _ = listed(endless, next_token="t", now=NOW, every=EVERY)

    assert (values["listed_to"], values["next_token"]) == (CLOSED, None)
    assert values["last_error"] == (
        f"the window of jobs created {CLOSED - EVERY} to {CLOSED} was cut after {MAX_PAGES} pages"
    )


def test_a_page_that_failed_is_asked_for_again_after_a_backoff_from_where_it_was() -> None:
    paging = Listing(CLOSED - EVERY, CLOSED, "t2", pages=1, attempts=1)
    page = window(paging, now=NOW, every=EVERY, lookback=LOOKBACK)
    assert page is not None

    values, due = failed(paging, page, now=NOW, error="HTTP 503 from ci", rng=random.Random(1))
    assert values == {"last_error": "HTTP 503 from ci", "listed_to": CLOSED - EVERY}
    assert RETRY_BASE / 2 <= due - NOW <= RETRY_BASE
    assert window(paging, now=due, every=EVERY, lookback=LOOKBACK) == page

    third = Listing(attempts=3)
    first = window(third, now=NOW, every=EVERY, lookback=LOOKBACK)
    assert first is not None
    values, due = failed(third, first, now=NOW, error="e", rng=random.Random(1))
    assert 2 * RETRY_BASE <= due - NOW <= 4 * RETRY_BASE
    # A first listing keeps the window it began: asked again later, it lists the same one.
    again = Listing(listed_to=values["listed_to"], attempts=4)
    assert window(again, now=due, every=EVERY, lookback=LOOKBACK) == first
    _, due = failed(third, first, now=NOW, error="e", retry_after_s=3600, rng=random.Random(1))
    assert due - NOW == timedelta(hours=1)

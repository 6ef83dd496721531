"""What a watch becomes after a poll: the backoff from 30 s doubling to 30 min, Retry-After when
longer, given up past its give-up time, and no poll counted when none was sent."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from app.polling.schedule import (
    RETRY_BASE,
    RETRY_CAP,
    Held,
    after_poll,
    heard_of_lately,
    not_configured,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
FAR = NOW + timedelta(days=2)


@pytest.mark.parametrize(
    ("polls", "step"),
    [(0, RETRY_BASE), (1, 2 * RETRY_BASE), (3, 8 * RETRY_BASE), (6, RETRY_CAP), (40, RETRY_CAP)],
)
def test_the_next_poll_backs_off_doubling_from_30_s_to_30_min_half_of_it_jittered(
    polls: int, step: timedelta
) -> None:
    dues = []
    for seed in range(50):
        values, due = after_poll(
            Held(polls=polls, attempts=polls + 1, give_up_at=FAR),
            now=NOW,
            error=None,
            rng=random.Random(seed),
        )
        assert values == {
            "last_error": None,
            "status": "polling",
            "polls": polls + 1,
            "last_polled_at": NOW,
        }
        assert due is not None
        dues.append(due - NOW)
    assert all(step / 2 <= wait <= step for wait in dues)
    assert len(set(dues)) > 1


def test_a_retry_after_longer_than_the_backoff_is_honoured_up_to_an_hour() -> None:
    held = Held(polls=0, attempts=1, give_up_at=FAR)

    _, asked = after_poll(held, now=NOW, error="HTTP 429", retry_after_s=600)
    _, capped = after_poll(held, now=NOW, error="HTTP 429", retry_after_s=10**9)
    _, shorter = after_poll(held, now=NOW, error="HTTP 503", retry_after_s=1, rng=random.Random(1))

    assert asked == NOW + timedelta(seconds=600)
    assert capped == NOW + timedelta(hours=1)
    assert shorter is not None and shorter - NOW >= RETRY_BASE / 2


def test_a_watch_whose_next_poll_falls_past_its_give_up_time_is_given_up() -> None:
    held = Held(polls=2, attempts=3, give_up_at=NOW + timedelta(seconds=10))

    values, due = after_poll(held, now=NOW, error="HTTP 500 from api")

    assert due is None
    assert values == {
        "last_error": "HTTP 500 from api",
        "status": "gave_up",
        "polls": 3,
        "last_polled_at": NOW,
    }


def test_a_watch_whose_provider_was_not_asked_counts_no_poll() -> None:
    """Its claims, not its polls, set the backoff: 5 of them, 8 minutes."""
    held = Held(polls=2, attempts=5, give_up_at=FAR)

    values, due = after_poll(held, now=NOW, error="not allowed", asked=False, rng=random.Random(0))

    assert values == {"last_error": "not allowed", "status": "polling"}
    assert due is not None and 16 * RETRY_BASE / 2 <= due - NOW <= 16 * RETRY_BASE


def test_a_watch_of_a_provider_without_credentials_is_only_put_off() -> None:
    assert not_configured(NOW, poll_after=timedelta(minutes=10), give_up_at=FAR) == (
        {},
        NOW + timedelta(minutes=10),
    )


def test_a_watch_of_a_provider_without_credentials_is_given_up_in_time() -> None:
    soon = NOW + timedelta(minutes=3)
    assert not_configured(NOW, poll_after=timedelta(minutes=10), give_up_at=soon) == ({}, soon)
    assert not_configured(soon, poll_after=timedelta(minutes=10), give_up_at=soon) == (
        {"status": "gave_up"},
        None,
    )


@pytest.mark.parametrize(
    ("status", "polls", "deliveries", "heard", "expected"),
    [
        # A progress report 3 minutes ago: the first poll waits until 10 minutes after it.
        ("waiting", 0, 1, NOW - timedelta(minutes=3), ({}, NOW + timedelta(minutes=7))),
        # Heard of 10 minutes ago or more: polled now.
        ("waiting", 0, 1, NOW - timedelta(minutes=10), None),
        # Only registered: its own delay stands.
        ("waiting", 0, 0, NOW - timedelta(minutes=3), None),
        # Polled already: the backoff stands, whatever callbacks said meanwhile.
        ("polling", 2, 3, NOW - timedelta(minutes=3), None),
        # Made due on purpose (POST .../poll, a callback's claim held): polled now.
        ("polling", 0, 1, NOW - timedelta(minutes=3), None),
        # Past its give-up time by then: polled now, once, then given up.
        ("waiting", 0, 1, FAR - timedelta(minutes=3), None),
    ],
)
def test_the_first_poll_waits_for_a_job_last_heard_of_lately(
    status: str, polls: int, deliveries: int, heard: datetime, expected: object
) -> None:
    row = SimpleNamespace(status=status, polls=polls, give_up_at=FAR)
    job = SimpleNamespace(deliveries=deliveries, last_received_at=heard)
    now = NOW if heard < NOW else FAR

    assert heard_of_lately(row, job, now, timedelta(minutes=10)) == expected

"""The watch of a provider without credentials is looked at again now and then, and given up at
its give-up time like any other."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import Engine

from app.polling.worker import Poller
from app.providers.model import Provider
from tests.mirror.conftest import Clock
from tests.polling.conftest import OPTIONS, FakeProviders, expect, watch_of


def test_an_unconfigured_providers_watch_ends_at_its_give_up_time(
    engine: Engine,
    clock: Clock,
    fake: Callable[..., FakeProviders],
    poller_for: Callable[..., Poller],
) -> None:
    suno_only = poller_for(fake(), providers=frozenset({Provider.SUNO}))
    expect(engine, Provider.MEDIA_LAB, "m-1", at=clock.now)  # given up 48 h after

    clock.now += timedelta(days=30)
    suno_only.run_once()

    watch = watch_of(engine, "m-1")
    assert watch["status"] == "gave_up" or watch["run_after"] is None


def test_unconfigured_providers_watches_are_looked_at_once_a_poll_interval(
    engine: Engine,
    clock: Clock,
    fake: Callable[..., FakeProviders],
    poller_for: Callable[..., Poller],
) -> None:
    """Not once a round: a round may end with each poll, and each look is a claim for each
    provider without credentials, in the writers' turn on SQLite."""
    suno_only = poller_for(fake(), providers=frozenset({Provider.SUNO}))
    interval = timedelta(seconds=OPTIONS.poll_s)
    expect(engine, Provider.MEDIA_LAB, "m-1", at=clock.now)
    expect(engine, Provider.MEDIA_LAB, "m-2", at=clock.now + interval / 2)
    clock.now = watch_of(engine, "m-1")["run_after"]

    suno_only.run_once()  # looks: m-1 is due and put off
    assert watch_of(engine, "m-1")["run_after"] > clock.now

    clock.now += interval / 2  # m-2 is due, but the last look was less than an interval ago
    due_at = watch_of(engine, "m-2")["run_after"]
    assert due_at <= clock.now
    suno_only.run_once()
    assert watch_of(engine, "m-2")["run_after"] == due_at

    clock.now += interval / 2
    suno_only.run_once()
    assert watch_of(engine, "m-2")["run_after"] > clock.now

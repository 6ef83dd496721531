"""The watch of a provider without credentials is looked at again now and then, and given up at
its give-up time like any other."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import Engine

from app.polling.worker import Poller
from app.providers.model import Provider
from tests.mirror.conftest import Clock
from tests.polling.conftest import FakeProviders, expect, watch_of


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

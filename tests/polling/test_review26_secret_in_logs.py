"""Review of issue 26: a credential the request cannot carry (a Suno key read with its trailing
newline, as a Kubernetes secret made from a file gives it) breaks the poll's thread: the
exception, whose text quotes the header value, is logged with the key in it, and the watch is
given back due at once, so the poller asks again every second and logs the key every time."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from sqlalchemy import Engine

from app.polling.worker import Poller
from app.providers.model import Provider
from tests.mirror.conftest import Clock
from tests.polling.conftest import (
    SUNO_KEY,
    FakeProviders,
    answer_of,
    expect,
    replying,
    watch_of,
)


def test_a_key_the_request_cannot_carry_is_a_watch_error_never_logged(
    engine: Engine,
    clock: Clock,
    fake: Callable[..., FakeProviders],
    poller_for: Callable[..., Poller],
    caplog: pytest.LogCaptureFixture,
) -> None:
    providers = fake(
        suno={"t-1": [replying(answer_of(Provider.SUNO, "record_info_pending.json", "t-1"))]}
    )
    poller = poller_for(providers, apis=providers.apis(suno_key=f"{SUNO_KEY}\n"))
    expect(engine, Provider.SUNO, "t-1", at=clock.now)
    clock.now = watch_of(engine, "t-1")["run_after"]

    with caplog.at_level(logging.DEBUG):
        [watch] = poller._exchange([], [], poller._free([]))
        polled = poller.poll(watch)  # raises today (the thread breaks)
        poller._exchange(poller._stored([polled]), [], {})

    assert SUNO_KEY not in caplog.text
    after = watch_of(engine, "t-1")
    assert after["last_error"] is not None and SUNO_KEY not in after["last_error"]
    assert after["run_after"] > clock.now  # not due again at once

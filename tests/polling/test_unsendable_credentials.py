"""A credential the request cannot carry (a key read with its file's trailing newline) is the
watch's error, named by the exception's type only: never logged, and the watch is retried after
its backoff, not asked again at once."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from sqlalchemy import Engine

from app.logs import log_config
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

    with caplog.at_level(logging.DEBUG, logger="app"):
        [watch] = poller._exchange([], [], poller._free([]))
        polled = poller.poll(watch)
        poller._exchange(poller._stored([polled]), [], {})

    assert SUNO_KEY not in caplog.text
    after = watch_of(engine, "t-1")
    assert after["last_error"] is not None and SUNO_KEY not in after["last_error"]
    assert after["run_after"] > clock.now  # not due again at once


def test_the_http_clients_lines_stay_out_of_the_log_even_at_debug() -> None:
    """httpx logs whole URLs (a presigned link's signature) and httpcore, at DEBUG, failures
    quoting header values: the processes' logging keeps both at WARNING, whatever the level."""
    loggers = log_config(json=True, level="DEBUG")["loggers"]

    assert {name: loggers[name]["level"] for name in ("httpx", "httpcore")} == {
        "httpx": "WARNING",
        "httpcore": "WARNING",
    }

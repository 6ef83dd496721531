"""`POST .../poll` while the job is being polled: the poll it asks for comes right after the one
in flight, whose answer (asked before) may be out of date, instead of after that poll's
backoff (up to 30 minutes)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import Engine

from app.db import open_read_database
from app.polling.expect import poll_now
from app.polling.worker import Poller
from app.providers.model import Provider
from tests.conftest import Backend
from tests.fetching.servers import Handler
from tests.mirror.conftest import Clock
from tests.polling.conftest import FakeProviders, answer_of, expect, replying, watch_of

SUNO = Provider.SUNO
PENDING = "record_info_pending.json"


def test_a_poll_asked_for_while_one_is_in_flight_comes_right_after_it(
    backend: Backend,
    engine: Engine,
    clock: Clock,
    fake: Callable[..., FakeProviders],
    poller_for: Callable[..., Poller],
) -> None:
    job_pk = expect(engine, SUNO, "t-1", at=clock.now)
    clock.now = watch_of(engine, "t-1")["run_after"]
    asked_at = clock.now + timedelta(seconds=1)  # while the poll due at clock.now is in flight

    async def asked_to_poll() -> bool:
        read_db = open_read_database(backend.settings())  # the web process's, as the API's
        try:
            return await poll_now(read_db.sessions, job_pk, now=asked_at)
        finally:
            await read_db.engine.dispose()

    def asked_meanwhile(handler: Handler) -> None:
        assert asyncio.run(asked_to_poll())
        replying(answer_of(SUNO, PENDING, "t-1"))(handler)

    providers = fake(suno={"t-1": [asked_meanwhile, replying(answer_of(SUNO, PENDING, "t-1"))]})
    poller = poller_for(providers)

    assert poller.run_once() == 1
    watch = watch_of(engine, "t-1")
    assert (watch["polls"], watch["run_after"]) == (1, asked_at)  # not put off by the backoff

    clock.now = asked_at
    assert poller.run_once() == 1
    watch = watch_of(engine, "t-1")
    assert watch["polls"] == 2
    assert watch["run_after"] > asked_at  # the backoff, now that nobody asked meanwhile

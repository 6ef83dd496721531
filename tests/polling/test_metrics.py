"""/metrics counts polls: the answers stored by provider and outcome, and the open or given-up
watches by provider and status, those whose last poll failed apart; read through an index of
poll answers alone."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from sqlalchemy import Engine, text

from app.polling.worker import Poller
from app.providers.model import Provider
from tests.conftest import Backend
from tests.mirror.conftest import Clock
from tests.polling.conftest import FakeProviders, answer_of, expect, replying, watch_of
from tests.test_observability import samples

SUNO, MEDIA_LAB = Provider.SUNO, Provider.MEDIA_LAB


@pytest.mark.anyio
async def test_metrics_count_poll_answers_by_outcome_and_watches_by_status(
    engine: Engine,
    clock: Clock,
    fake: Callable[..., FakeProviders],
    poller_for: Callable[..., Poller],
    client: httpx.AsyncClient,
) -> None:
    providers = fake(
        suno={
            "done": [replying(answer_of(SUNO, "record_info_separate_vocal.json", "done"))],
            "pending": [replying(answer_of(SUNO, "record_info_pending.json", "pending"))],
            "wrong": [replying(answer_of(SUNO, "record_info_wrong_key.json", "wrong"))],
        },
        media_lab={"down": [replying(b"", 502)]},
    )
    for provider, job_id in [(SUNO, "done"), (SUNO, "pending"), (SUNO, "wrong")]:
        expect(engine, provider, job_id, at=clock.now)
    expect(engine, MEDIA_LAB, "down", at=clock.now)
    expect(engine, MEDIA_LAB, "later", at=clock.now + clock.now.resolution)
    clock.now = watch_of(engine, "down")["run_after"]
    poller = poller_for(providers)
    while poller.run_once():
        pass

    scraped = samples((await client.get("/metrics")).text)

    polls = {key: value for key, value in scraped.items() if "watch" in key[0] or "poll" in key[0]}
    assert polls == {
        # PENDING is a registered job's first word, not a duplicate of its registration.
        ("stemhook_poll_answers", (("outcome", "accepted"), ("provider", "suno"))): 2,
        ("stemhook_poll_answers", (("outcome", "rejected"), ("provider", "suno"))): 1,
        ("stemhook_watches", (("provider", "suno"), ("status", "polling"))): 2,
        ("stemhook_watches", (("provider", "tencent-media-lab"), ("status", "polling"))): 1,
        ("stemhook_watches", (("provider", "tencent-media-lab"), ("status", "waiting"))): 1,
        ("stemhook_watches_failing", (("provider", "suno"), ("status", "polling"))): 1,
        (
            "stemhook_watches_failing",
            (("provider", "tencent-media-lab"), ("status", "polling")),
        ): 1,
        (
            "stemhook_watches_failing",
            (("provider", "tencent-media-lab"), ("status", "waiting")),
        ): 0,
    }


def test_poll_answers_are_counted_through_their_own_index(backend: Backend, engine: Engine) -> None:
    counting = (
        "SELECT provider, outcome, count(*) FROM delivery WHERE endpoint LIKE 'poll/%'"
        " GROUP BY provider, outcome"
    )
    with engine.connect() as connection:
        if backend.name == "sqlite":
            plan = connection.execute(text(f"EXPLAIN QUERY PLAN {counting}"))
            used = " ".join(str(row[-1]) for row in plan)
        else:
            # The tables are empty: without this, a sequential scan is cheapest whatever the index.
            connection.execute(text("SET LOCAL enable_seqscan = off"))
            used = " ".join(str(row[0]) for row in connection.execute(text(f"EXPLAIN {counting}")))
    assert "ix_delivery_provider_outcome" in used

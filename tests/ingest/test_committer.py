"""The committer against a PostgreSQL that stops answering, or answers late, mid-transaction."""

from __future__ import annotations

import logging
import threading

import pytest

from app.config import Settings
from app.db import create_sync_engine
from app.errors import StorageUnavailable
from app.ingest.committer import Answer, Committer
from app.ingest.intake import Outcome, Receipt, Submission
from tests.api.payloads import ci_json
from tests.conftest import Backend
from tests.ingest.submissions import detected
from tests.proxy import FaultyProxy


def submission(job_id: str) -> Submission:
    return detected(ci_json(job_id, "Success"))


@pytest.mark.postgres_only
def test_a_commit_the_server_never_answers_is_interrupted(
    backend: Backend, settings: Settings, proxy: FaultyProxy
) -> None:
    url = backend.url.replace(":5432/", f":{proxy.port}/")
    engine = create_sync_engine(Backend("proxied", url).settings(write_timeout_s=1))
    committer = Committer(engine, suno_key=None, timeout_s=1)
    answers: list[Answer] = []
    try:
        (before,) = committer.commit([submission("j-before")])
        assert isinstance(before, Receipt) and before.outcome is Outcome.ACCEPTED
        proxy.mute_at(b"COMMIT")
        worker = threading.Thread(
            target=lambda: answers.extend(committer.commit([submission("j-hung")])), daemon=True
        )
        worker.start()
        worker.join(timeout=60)  # the watchdog interrupts after timeout + 1 s

        assert not worker.is_alive(), "the COMMIT was never interrupted"
        assert [type(answer) for answer in answers] == [StorageUnavailable]
    finally:
        committer.close()
        engine.dispose()


@pytest.mark.postgres_only
def test_a_slow_commit_is_logged_with_its_duration(
    backend: Backend,
    proxy: FaultyProxy,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A threshold well above what a commit of the shared server takes, even on a busy disk or a
    # starved machine, and below the delay given to the COMMIT.
    monkeypatch.setattr("app.ingest.committer.SLOW_COMMIT_S", 0.9)
    url = backend.url.replace(":5432/", f":{proxy.port}/")
    engine = create_sync_engine(Backend("proxied", url).settings())
    committer = Committer(engine, suno_key=None, timeout_s=5)
    caplog.set_level(logging.WARNING, logger="app.ingest.committer")
    try:
        # Slow statements are not a slow commit: only the COMMIT is timed.
        proxy.delay_at(b"INSERT", 1.0)
        (slow_statements,) = committer.commit([submission("j-slow-insert")])
        assert not [r for r in caplog.records if r.name == "app.ingest.committer"]

        proxy.delay_at(b"COMMIT", 1.0)
        answers = committer.commit([submission("j-slow-1"), submission("j-slow-2")])
    finally:
        committer.close()
        engine.dispose()

    outcomes = [a.outcome for a in (slow_statements, *answers) if isinstance(a, Receipt)]
    assert outcomes == [Outcome.ACCEPTED] * 3
    (record,) = [r for r in caplog.records if r.name == "app.ingest.committer"]
    assert record.levelno == logging.WARNING
    assert record.deliveries == 2  # type: ignore[attr-defined]
    assert record.commit_ms >= 1000  # type: ignore[attr-defined]

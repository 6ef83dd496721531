"""The committer against a PostgreSQL that stops answering halfway through a transaction."""

from __future__ import annotations

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
        worker.join(timeout=10)  # the watchdog interrupts after timeout + 1 s

        assert not worker.is_alive(), "the COMMIT was never interrupted"
        assert [type(answer) for answer in answers] == [StorageUnavailable]
    finally:
        committer.close()
        engine.dispose()

"""bench/polling/provider.py answers record-info about any task with the PENDING fixture, which
stemhook parses into that task, still submitted."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from app.polling.requests import SUNO_RECORD_INFO
from app.providers.model import Provider, State
from app.providers.registry import parse_poll_answer
from bench.stand_ins import started

pytestmark = pytest.mark.servers


@pytest.fixture
def base_url() -> Iterator[str]:
    with started("bench.polling.provider") as server:
        yield server.origin


def test_each_task_is_answered_pending_about_itself_on_one_connection(base_url: str) -> None:
    with httpx.Client(base_url=base_url) as client:
        answers = [
            client.get(SUNO_RECORD_INFO, params={"taskId": task}) for task in ("poll-1", "p_2")
        ]

    for task, answer in zip(("poll-1", "p_2"), answers, strict=True):
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/json"
        parsed = parse_poll_answer(answer.content, provider=Provider.SUNO)
        assert [(job.job_id, job.state) for job in parsed.jobs] == [(task, State.SUBMITTED)]


@pytest.mark.parametrize(
    "path",
    [SUNO_RECORD_INFO, f"{SUNO_RECORD_INFO}?taskId=a%22b", "/other?taskId=t-1", "/"],
)
def test_anything_else_is_not_found(base_url: str, path: str) -> None:
    assert httpx.get(base_url + path).status_code == 404

"""The background process of a real server polls a job whose callback never came and, on the
mirror's thread beside the poller's, stores the files the answer names; it is started only when
there is something to do."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from sqlalchemy import Engine, select

from app import models
from app.background import needed
from app.config import Settings
from app.polling.watches import WatchPolicy
from app.providers.model import Provider
from tests.conftest import Backend
from tests.mirror.conftest import Clock
from tests.polling.conftest import (
    RECORD_INFO,
    SUNO_KEY,
    FakeProviders,
    answer_of,
    expect,
    replying,
    watch_of,
)
from tests.reliability.support import server_env
from tests.servers import server_process

# Far above what a quiet machine needs (a second or two); polled, never slept through.
PATIENCE_S = 120


def test_a_servers_background_process_polls_a_job_to_its_end_and_stores_its_files(
    backend: Backend, engine: Engine, tmp_path: Path
) -> None:
    answer = orjson.loads(answer_of(Provider.SUNO, "record_info_separate_vocal.json", "bg-1"))
    providers = FakeProviders(Clock(), suno={"bg-1": []})
    stems = {name: url for name, url in answer["data"]["response"].items() if url}
    for name in stems:  # the files the answer names, served from loopback
        providers.server.routes[f"/{name}.mp3"] = replying(name.encode() * 1000)
        answer["data"]["response"][name] = f"{providers.origin}/{name}.mp3"
    providers.suno.replies["bg-1"].append(replying(orjson.dumps(answer)))
    env = server_env(
        backend.url,
        suno_api_key=SUNO_KEY,
        suno_api_base=providers.origin,
        fetch_allow_networks="127.0.0.1/32",
        mirror="true",
        files_dir=tmp_path / "files",
    )
    due_now = WatchPolicy(poll_after=timedelta(0), give_up_after=timedelta(hours=1))
    try:
        with server_process(env, tmp_path) as server:
            expect(engine, Provider.SUNO, "bg-1", at=datetime.now(UTC), policy=due_now)
            deadline = time.monotonic() + PATIENCE_S
            while statuses(engine) != ["stored"] * len(stems):
                assert time.monotonic() < deadline, server.log.read_text()
                time.sleep(0.05)
    finally:
        providers.stop()

    watch = watch_of(engine, "bg-1")
    assert (watch["state"], watch["status"], watch["polls"]) == ("succeeded", "done", 1)
    assert providers.suno.asked == ["bg-1"]
    assert [path for path, _ in providers.server.requests].count(RECORD_INFO) == 1
    assert "background process" in server.log.read_text()


def statuses(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return list(connection.scalars(select(models.JobFile.status)))


@pytest.mark.parametrize(
    ("settings", "wanted"),
    [
        ({"mirror": False}, False),
        ({"mirror": True}, True),
        ({"mirror": False, "suno_api_key": "k"}, True),
        ({"mirror": False, "media_lab_secret_id": "i", "media_lab_secret_key": "k"}, True),
    ],
)
def test_the_background_process_starts_only_with_something_to_do(
    settings: dict[str, object], wanted: bool
) -> None:
    assert needed(Settings(_env_file=None, **settings)) is wanted  # type: ignore[call-arg]

"""The background process of a real server polls a job whose callback never came and, on the
mirror's thread beside the poller's, stores the files the answer names; it is started only when
there is something to do."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import Engine

from app.background import list_options, needed, workers
from app.config import Settings
from app.providers.model import Provider
from tests.conftest import Backend
from tests.mirror.conftest import Clock
from tests.polling.conftest import SUNO_KEY, FakeProviders, answer_of, replying
from tests.reliability.support import AUTH, server_env
from tests.servers import server_process

pytestmark = pytest.mark.servers

# Far above what a quiet machine needs (a second or two); polled, never slept through.
PATIENCE_S = 120


def test_a_registered_job_is_polled_by_the_background_process_and_its_files_stored(
    backend: Backend, tmp_path: Path
) -> None:
    """Registered through the API (PUT .../expect), polled a second later by the server's
    background process, whose mirror thread then stores the files the answer names."""
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
    try:
        with (
            server_process(env, tmp_path) as server,
            httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as http,
        ):
            registered = http.put("/v1/jobs/suno/bg-1/expect", json={"poll_after_s": 1})
            assert registered.status_code == 201
            deadline = time.monotonic() + PATIENCE_S
            while not _all_stored(job := http.get("/v1/jobs/suno/bg-1").json()):
                assert time.monotonic() < deadline, server.log.read_text()
                time.sleep(0.05)
            served = [http.get(output["file"]["href"]).content for output in job["outputs"]]
    finally:
        providers.stop()

    assert (job["state"], job["deliveries"]) == ("succeeded", 1)
    assert {key: job["watch"][key] for key in ("status", "polls", "last_error")} == {
        "status": "done",
        "polls": 1,
        "last_error": None,
    }
    assert sorted(served) == sorted(name.encode() * 1000 for name in stems)
    assert providers.suno.asked == ["bg-1"]
    assert "background process" in server.log.read_text()


def _all_stored(job: dict[str, Any]) -> bool:
    """Every output stored, and the poll counted on its watch (by the poller's transaction
    after the one that stored its answer)."""
    outputs = job["outputs"] or []
    stored = bool(outputs) and all(output["file"]["status"] == "stored" for output in outputs)
    return stored and job["watch"]["polls"] > 0


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


CI_LISTED = {
    "mirror": False,
    "cos_secret_id": "AKIDexample",
    "cos_secret_key": "a-secret",
    "cos_buckets": "media-1250000000@ap-guangzhou",
}


@pytest.mark.parametrize(
    ("queues", "wanted"),
    [("", {"poller"}), ("p1@media-1250000000@ap-guangzhou", {"poller", "lister"})],
)
def test_ci_queues_are_listed_on_a_thread_beside_the_poller(
    backend: Backend, engine: Engine, queues: str, wanted: set[str]
) -> None:
    settings = backend.settings(**CI_LISTED, ci_queues=queues)
    closing: list[Callable[[], None]] = []
    try:
        assert set(workers(settings, engine, closing)) == wanted
    finally:
        for close in reversed(closing):
            close()


@pytest.mark.parametrize(("most", "page"), [(100, 100), (30, 30), (250, 100)])
def test_a_queue_is_listed_in_pages_no_larger_than_one_delivery_may_be(
    most: int, page: int
) -> None:
    settings = Settings(_env_file=None, max_jobs_per_delivery=most)  # type: ignore[call-arg]

    options = list_options(settings)

    assert options.page_size == page
    assert (options.every, options.lookback) == (settings.poll_after, settings.poll_give_up_after)

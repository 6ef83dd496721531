"""Mirroring in real server processes: a file killed mid-download is stored once and whole after a
restart, and servers sharing a PostgreSQL database fetch each file exactly once."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from app.storage.local import TEMPORARY_PREFIX
from tests.api.payloads import suno_json
from tests.conftest import Backend
from tests.fetching.servers import FileServer, Handler
from tests.mirror.routes import Stalling
from tests.reliability.support import AUTH, figures, server_env
from tests.servers import server_process

pytestmark = pytest.mark.servers

# Far above what a quiet machine needs (a second or two); polled, never slept through.
PATIENCE_S = 120


def mirror_env(backend: Backend, files_dir: Path, **settings: object) -> dict[str, str]:
    return server_env(
        backend.url,
        mirror="true",
        fetch_allow_networks="127.0.0.1/32",
        files_dir=files_dir,
        **settings,
    )


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + PATIENCE_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still not {what} after {PATIENCE_S} s")
        time.sleep(0.05)


def answering(content: bytes) -> Callable[[Handler], None]:
    return lambda handler: handler.answer(200, content)


def statuses(engine: Engine) -> Counter[str]:
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT status, count(*) FROM job_file GROUP BY status"))
        return Counter({status: count for status, count in rows})


def test_a_callbacks_stems_are_served_back_identical_after_the_source_is_gone(
    backend: Backend, tmp_path: Path, serve: Callable[[dict[str, Any]], FileServer]
) -> None:
    stems = {"/v.mp3": b"vocals " * 30000, "/i.mp3": b"instrumental " * 20000}
    server = serve({path: answering(content) for path, content in stems.items()})
    base = f"http://127.0.0.1:{server.port}"
    callback = suno_json(
        "served-1", stems={"vocal_url": f"{base}/v.mp3", "instrumental_url": f"{base}/i.mp3"}
    )

    with (
        server_process(mirror_env(backend, tmp_path / "files"), tmp_path) as running,
        httpx.Client(base_url=running.url, headers=AUTH, timeout=30) as http,
    ):
        assert http.post("/callbacks/suno", content=callback).status_code == 200

        def outputs() -> list[dict[str, Any]]:
            job: dict[str, Any] = http.get("/v1/jobs/suno/served-1").json()
            return job["outputs"]

        wait_until(lambda: all(o["file"]["status"] == "stored" for o in outputs()), "stored")
        served = {o["url"]: http.get(o["file"]["href"]).content for o in outputs()}
        server.stop()
        served_after = {o["url"]: http.get(o["file"]["href"]).content for o in outputs()}

    expected = {base + path: content for path, content in stems.items()}
    assert served == expected
    assert served_after == expected


def test_a_download_killed_midway_is_stored_once_and_whole_after_a_restart(
    backend: Backend,
    engine: Engine,
    tmp_path: Path,
    serve: Callable[[dict[str, Any]], FileServer],
) -> None:
    body = random.Random(1).randbytes(8 * 1024 * 1024)
    stalling = Stalling(body, first_piece=1024 * 1024)
    server = serve({"/long.wav": stalling})
    files_dir = tmp_path / "files"
    # A short lease: the restarted process takes the dead one's task soon after.
    env = mirror_env(backend, files_dir, fetch_lease_s=10)
    callback = suno_json("crash-1", stems={"vocal_url": f"http://127.0.0.1:{server.port}/long.wav"})

    with server_process(env, tmp_path) as first:
        assert httpx.post(f"{first.url}/callbacks/suno", content=callback).status_code == 200
        assert stalling.started.wait(PATIENCE_S)
        os.killpg(first.process.pid, signal.SIGKILL)
        first.process.wait()
    stalling.release.set()
    with server_process(env, tmp_path):
        wait_until(lambda: statuses(engine)["stored"] == 1, "stored")

    with engine.connect() as connection:
        row = connection.execute(text("SELECT bytes, sha256, storage_key FROM job_file")).one()
    kept = [path for path in files_dir.rglob("*") if path.is_file()]
    whole = [path for path in kept if not path.name.startswith(TEMPORARY_PREFIX)]
    assert (row.bytes, row.sha256) == (len(body), hashlib.sha256(body).hexdigest())
    assert whole == [files_dir / row.storage_key]
    assert whole[0].read_bytes() == body
    assert [path for path, _ in server.requests] == ["/long.wav", "/long.wav"]


@pytest.mark.postgres_only
def test_two_servers_fetch_each_file_exactly_once(
    backend: Backend,
    engine: Engine,
    tmp_path: Path,
    serve: Callable[[dict[str, Any]], FileServer],
) -> None:
    jobs = 200
    routes = {
        f"/{job}/{stem}.mp3": answering(f"{job} {stem}".encode() * 100)
        for job in range(jobs)
        for stem in ("vocals", "backing")
    }
    server = serve(routes)
    base = f"http://127.0.0.1:{server.port}"
    env = mirror_env(backend, tmp_path / "files")

    started = time.monotonic()
    with ExitStack() as running:
        urls = [running.enter_context(server_process(env, tmp_path)).url for _ in range(2)]
        with httpx.Client(timeout=30) as http:
            for job in range(jobs):
                callback = suno_json(
                    f"pair-{job}",
                    stems={
                        "vocal_url": f"{base}/{job}/vocals.mp3",
                        "instrumental_url": f"{base}/{job}/backing.mp3",
                    },
                )
                answer = http.post(f"{urls[job % 2]}/callbacks/suno", content=callback)
                assert answer.status_code == 200
        wait_until(lambda: statuses(engine)["stored"] == len(routes), "all stored")
    elapsed = time.monotonic() - started

    fetched = Counter(path for path, _ in server.requests)
    figures(
        "mirroring with two server processes on PostgreSQL",
        files=len(routes),
        fetches=sum(fetched.values()),
        fetched_twice=sum(count > 1 for count in fetched.values()),
        seconds_from_first_callback_to_all_stored=round(elapsed, 1),
    )
    assert statuses(engine) == Counter(stored=len(routes))
    assert fetched == Counter(dict.fromkeys(routes, 1))

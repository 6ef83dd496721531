"""The mirror worker against a file server on loopback: what it stores, retries and refuses."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from datetime import timedelta
from ipaddress import ip_network
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from app.fetching.fetcher import CHUNK_BYTES, Fetcher
from app.ingest.in_flight import PATIENCE_S, WritesInFlight
from app.mirror.worker import Mirror
from app.storage.local import LocalStore
from tests.api.payloads import suno_json
from tests.fetching.servers import FileServer, Listener
from tests.ingest.file_rows import store
from tests.mirror.conftest import OPTIONS, Clock, loopback_fetcher, mirror_of
from tests.mirror.routes import Flaky, Stalling

VOCALS = bytes(range(256)) * 1000
BACKING = b"instrumental " * 7000
# Past the longest backoff OPTIONS allow: every retry is due again.
LATER = timedelta(minutes=11)


def queue_stems(engine: Engine, server: FileServer | None, **paths: str) -> None:
    base = f"http://127.0.0.1:{server.port}" if server else ""
    store(engine, suno_json("task-1", stems={name: base + path for name, path in paths.items()}))


def file_rows(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT position, status, bytes, sha256, md5, md5_verified, content_type,"
                " storage_key, error, attempts, run_after, leased_by FROM job_file"
                " ORDER BY position"
            )
        ).mappings()
        return [dict(row) for row in rows]


def stored_files(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


def test_the_stems_of_a_suno_callback_are_stored_byte_identical(
    engine: Engine, mirror: Mirror, files: LocalStore, serve: Callable[..., FileServer]
) -> None:
    server = serve(
        {
            "/i.mp3": lambda h: h.answer(200, BACKING, {"Content-Type": "audio/mpeg"}),
            "/v.mp3": lambda h: h.answer(200, VOCALS, {"Content-Type": "audio/mpeg"}),
        }
    )
    queue_stems(engine, server, instrumental_url="/i.mp3", vocal_url="/v.mp3")

    assert mirror.run_once() == 2

    rows = file_rows(engine)
    for row, content in zip(rows, (BACKING, VOCALS), strict=True):
        assert row | {"storage_key": None} == {
            "position": row["position"],
            "status": "stored",
            "bytes": len(content),
            "sha256": hashlib.sha256(content).hexdigest(),
            "md5": hashlib.md5(content).hexdigest(),
            "md5_verified": None,
            "content_type": "audio/mpeg",
            "storage_key": None,
            "error": None,
            "attempts": 1,
            "run_after": None,
            "leased_by": None,
        }
        assert b"".join(files.open(row["storage_key"])) == content
    assert mirror.run_once() == 0


def test_a_source_that_fails_twice_then_answers_is_stored(
    engine: Engine, mirror: Mirror, clock: Clock, serve: Callable[..., FileServer]
) -> None:
    server = serve({"/v.mp3": Flaky(2, VOCALS)})
    queue_stems(engine, server, vocal_url="/v.mp3")

    outcomes = []
    for _ in range(3):
        assert mirror.run_once() == 1
        [row] = file_rows(engine)
        outcomes.append((row["status"], row["attempts"], row["error"] is not None))
        assert mirror.run_once() == 0  # not due before its backoff
        clock.now += LATER

    assert outcomes == [("pending", 1, True), ("pending", 2, True), ("stored", 3, False)]


def test_a_source_answering_404_is_failed_after_one_confirmation(
    engine: Engine, mirror: Mirror, clock: Clock, serve: Callable[..., FileServer]
) -> None:
    server = serve({})
    queue_stems(engine, server, vocal_url="/gone.mp3")

    mirror.run_once()
    first = file_rows(engine)[0]["status"]
    clock.now += LATER
    mirror.run_once()

    [row] = file_rows(engine)
    assert (first, row["status"], row["run_after"], len(server.requests)) == (
        "pending",
        "failed",
        None,
        2,
    )
    assert "404" in row["error"]


def test_a_source_that_keeps_failing_is_given_up_with_its_last_error(
    engine: Engine, mirror: Mirror, clock: Clock, serve: Callable[..., FileServer]
) -> None:
    server = serve({"/v.mp3": Flaky(OPTIONS.max_attempts, VOCALS)})
    queue_stems(engine, server, vocal_url="/v.mp3")

    for _ in range(OPTIONS.max_attempts):
        mirror.run_once()
        clock.now += LATER

    [row] = file_rows(engine)
    assert (row["status"], row["attempts"], row["run_after"]) == (
        "failed",
        OPTIONS.max_attempts,
        None,
    )
    assert row["error"].startswith(f"gave up after {OPTIONS.max_attempts} attempts: ")
    assert "503" in row["error"]


def test_an_address_outside_the_admitted_networks_is_refused_without_a_connection(
    engine: Engine, mirror: Mirror, serve: Callable[..., FileServer]
) -> None:
    outside = Listener("127.0.0.2")
    server = serve({"/away": lambda h: h.answer(302, b"", {"Location": outside_url})})
    outside_url = f"http://127.0.0.2:{outside.port}/v.mp3"
    try:
        store(
            engine,
            suno_json(
                "task-1",
                stems={
                    "vocal_url": outside_url,
                    "instrumental_url": f"http://127.0.0.1:{server.port}/away",
                },
            ),
        )
        mirror.run_once()
        connected = outside.connected()
    finally:
        outside.close()

    rows = file_rows(engine)
    assert [(row["status"], row["attempts"]) for row in rows] == [("failed", 1), ("failed", 1)]
    assert all("refused" in row["error"] and "127.0.0.2" in row["error"] for row in rows)
    assert not connected


def test_a_body_over_the_cap_is_failed_and_leaves_no_partial_file(
    engine: Engine, mirror: Mirror, files: LocalStore, serve: Callable[..., FileServer]
) -> None:
    server = serve({"/big": lambda h: h.chunked(20, b"x" * 65536)})
    queue_stems(engine, server, vocal_url="/big")

    mirror.run_once()

    [row] = file_rows(engine)
    assert (row["status"], row["bytes"]) == ("failed", None)
    assert "too large" in row["error"]
    assert stored_files(files.root) == []


def test_a_file_whose_md5_differs_from_the_callbacks_is_failed_and_removed(
    engine: Engine, mirror: Mirror, files: LocalStore, serve: Callable[..., FileServer]
) -> None:
    server = serve({"/v.mp3": lambda h: h.answer(200, VOCALS)})
    queue_stems(engine, server, vocal_url="/v.mp3")
    with engine.begin() as connection:
        connection.execute(text("UPDATE job_file SET expected_md5 = :md5"), {"md5": "0" * 32})

    mirror.run_once()

    [row] = file_rows(engine)
    assert (row["status"], row["md5_verified"]) == ("failed", False)
    assert row["error"].startswith("md5 mismatch")
    assert stored_files(files.root) == []


def test_a_stopping_worker_abandons_its_fetch_and_gives_the_task_back(
    engine: Engine, mirror: Mirror, files: LocalStore, serve: Callable[..., FileServer]
) -> None:
    stalling = Stalling(b"s" * 65536 * 10)
    server = serve({"/long": stalling})
    queue_stems(engine, server, vocal_url="/long")
    running = threading.Thread(target=mirror.run)
    running.start()
    try:
        assert stalling.started.wait(timeout=60)
        mirror.stop()
    finally:
        stalling.release.set()
        running.join(timeout=60)

    [row] = file_rows(engine)
    assert (row["status"], row["attempts"], row["leased_by"]) == ("pending", 0, None)
    assert row["run_after"] is not None
    assert stored_files(files.root) == []


class Watched(WritesInFlight):
    """The web process's writes as the mirror sees them, and how often it waited on them."""

    def __init__(self) -> None:
        super().__init__()
        self.waits = 0

    def wait_for_none(
        self, stop: threading.Event, *, sleep: Callable[[float], bool] | None = None
    ) -> None:
        self.waits += 1
        super().wait_for_none(stop, sleep=sleep)


def test_under_writes_that_never_end_a_file_is_still_stored_a_piece_at_a_time(
    engine: Engine, files: LocalStore, clock: Clock, serve: Callable[..., FileServer]
) -> None:
    """Each piece (64 KiB) is read once no write is awaited, or after a second's wait."""
    content = b"p" * (CHUNK_BYTES + 1)
    server = serve({"/v.mp3": lambda h: h.answer(200, content, {"Content-Type": "audio/mpeg"})})
    queue_stems(engine, server, vocal_url="/v.mp3")
    in_flight = Watched()
    fetcher = loopback_fetcher()
    mirror = mirror_of(engine, files, clock, fetcher, in_flight)
    try:
        with in_flight.one():
            assert mirror.run_once() == 1
    finally:
        fetcher.close()

    [row] = file_rows(engine)
    assert (row["status"], row["bytes"]) == ("stored", len(content))
    assert in_flight.waits == 3  # before each of the two pieces, and before the body's end


class Monotonic:
    """The fetch's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class WritesThatNeverEnd(WritesInFlight):
    """Each wait for a moment without writes lasts the whole patience, on the fetch's clock."""

    def __init__(self, monotonic: Monotonic) -> None:
        super().__init__()
        self._monotonic = monotonic

    def wait_for_none(
        self, stop: threading.Event, *, sleep: Callable[[float], bool] | None = None
    ) -> None:
        self._monotonic.now += PATIENCE_S


def test_waiting_between_writes_does_not_count_against_the_whole_fetch_deadline(
    engine: Engine, files: LocalStore, clock: Clock, serve: Callable[..., FileServer]
) -> None:
    """A download paced by callbacks for longer than STEMHOOK_FETCH_TIMEOUT_S is still stored:
    the deadline cuts off a source that drips, not the mirror's own yielding."""
    content = b"p" * (8 * CHUNK_BYTES)
    server = serve({"/v.mp3": lambda h: h.answer(200, content, {"Content-Type": "audio/mpeg"})})
    queue_stems(engine, server, vocal_url="/v.mp3")
    monotonic = Monotonic()
    fetcher = Fetcher(
        admitted=[ip_network("127.0.0.1/32")],
        max_bytes=1_000_000,
        connect_timeout_s=10,
        read_timeout_s=30,
        total_timeout_s=5,
        clock=monotonic,
    )
    mirror = mirror_of(engine, files, clock, fetcher, WritesThatNeverEnd(monotonic))
    try:
        assert mirror.run_once() == 1
    finally:
        fetcher.close()

    [row] = file_rows(engine)
    assert monotonic.now > 5  # the waits alone outlasted the deadline
    assert (row["status"], row["bytes"], row["error"]) == ("stored", len(content), None)

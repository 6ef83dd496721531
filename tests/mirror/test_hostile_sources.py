"""Findings of the security review of mirroring (each failed before its fix): a huge Retry-After,
a worker whose lease ran out, one callback naming thousands of files."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from datetime import timedelta

import orjson
from sqlalchemy import Engine, select, text

from app import models
from app.fetching.errors import MAX_RETRY_AFTER
from app.mirror.sources import MAX_FILES_PER_JOB
from app.mirror.worker import Mirror
from app.storage.local import LocalStore
from tests.fetching.servers import FileServer, Handler
from tests.ingest.file_rows import store
from tests.mirror.conftest import OPTIONS, Clock, loopback_fetcher
from tests.mirror.test_worker import file_rows, queue_stems


def test_a_huge_retry_after_is_capped_and_the_task_settled(
    engine: Engine, mirror: Mirror, clock: Clock, serve: Callable[..., FileServer]
) -> None:
    """A 503 with `Retry-After: 100000000000000` (digits only, so parse_retry_after takes it)
    makes `timedelta(seconds=...)` overflow inside the `except Retryable` clause of
    Mirror._fetched: OverflowError escapes _mirror. Under Mirror.run the future's exception is
    never read, so the task stays leased to the worker, whose _renew keeps extending every lease
    it holds: the file is stuck for as long as the process runs."""
    server = serve({"/v.mp3": lambda h: h.answer(503, b"busy", {"Retry-After": "100000000000000"})})
    queue_stems(engine, server, vocal_url="/v.mp3")

    mirror.run_once()

    [row] = file_rows(engine)
    with engine.connect() as connection:
        run_after = connection.scalar(select(models.JobFile.run_after))
    assert (row["status"], row["leased_by"]) == ("pending", None)
    assert run_after is not None
    assert run_after <= clock.now + MAX_RETRY_AFTER


class _TwoVersions:
    """First answer: stalls after its first piece until released, then sends `first`;
    later answers send `second` at once (a source whose bytes changed, or a hostile one)."""

    def __init__(self, first: bytes, second: bytes) -> None:
        self.first, self.second = first, second
        self.started, self.release = threading.Event(), threading.Event()

    def __call__(self, handler: Handler) -> None:
        stall = not self.started.is_set()
        body = self.first if stall else self.second
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("Content-Type", "audio/wav")
        handler.end_headers()
        if stall:
            handler.wfile.write(body[:65536])
            handler.wfile.flush()
            self.started.set()
            self.release.wait(timeout=120)
            handler.wfile.write(body[65536:])
        else:
            handler.wfile.write(body)


def test_a_worker_that_lost_its_lease_does_not_replace_the_stored_file(
    engine: Engine,
    mirror: Mirror,
    files: LocalStore,
    clock: Clock,
    serve: Callable[..., FileServer],
) -> None:
    """Worker w1 stalls mid-download; its lease runs out and w2 claims, stores and settles the
    file. When w1's download ends it renames its bytes over the same key (the key depends only
    on job and position) although its settle is then refused: the row describes w2's bytes
    (sha256, size, ETag, Content-Length) while the store serves w1's."""
    first, second = b"A" * 200_000, b"B" * 100_000
    source = _TwoVersions(first, second)
    server = serve({"/v.mp3": source})
    queue_stems(engine, server, vocal_url="/v.mp3")
    fetcher = loopback_fetcher()
    other = Mirror(engine, fetcher=fetcher, store=files, options=OPTIONS, worker="w2", clock=clock)
    stale = threading.Thread(target=mirror.run_once)
    stale.start()
    try:
        assert source.started.wait(timeout=60)
        clock.now += OPTIONS.lease + timedelta(seconds=1)
        assert other.run_once() == 1
    finally:
        source.release.set()
        stale.join(timeout=60)
        fetcher.close()

    [row] = file_rows(engine)
    assert (row["status"], row["sha256"]) == ("stored", hashlib.sha256(second).hexdigest())
    served = b"".join(files.open(row["storage_key"]))
    assert hashlib.sha256(served).hexdigest() == row["sha256"]


def test_one_callback_cannot_queue_an_unbounded_number_of_files(engine: Engine) -> None:
    """Suno's parser takes every key ending in `_url` as an output (role OTHER): one
    unauthenticated callback of ~100 KB queues thousands of fetches of up to
    STEMHOOK_FETCH_MAX_BYTES (2 GiB) each; the API serves positions up to 10,000 only."""
    stems = {f"x{n}_url": f"https://files.example/{n}.mp3" for n in range(2000)}
    body = orjson.dumps(
        {"code": 200, "msg": "ok", "data": {"task_id": "t-big", "vocal_removal_info": stems}}
    )
    store(engine, body)

    with engine.connect() as connection:
        queued = connection.execute(text("SELECT count(*) FROM job_file")).scalar_one()
    assert queued == MAX_FILES_PER_JOB

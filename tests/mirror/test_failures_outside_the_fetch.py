"""Failures of the mirror worker outside the fetch end in a counted attempt, never in a
task handed straight back, and the run loop survives any length of database outage."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from sqlalchemy import Engine, create_engine, text

from app.mirror.worker import Mirror
from app.storage.local import LocalStore
from tests.fetching.servers import FileServer
from tests.mirror.conftest import OPTIONS, Clock, loopback_fetcher
from tests.mirror.test_worker import LATER, VOCALS, file_rows, queue_stems, stored_files


class UndeletableStore(LocalStore):
    """A store that writes but may not delete (an S3 policy without s3:DeleteObject)."""

    def delete(self, key: str) -> None:
        raise PermissionError(f"deleting {key} is not allowed")


def test_an_md5_mismatch_whose_copy_cannot_be_deleted_is_not_fetched_again_at_once(
    engine: Engine, tmp_path: Path, serve: Callable[..., FileServer]
) -> None:
    clock = Clock()
    server = serve({"/v.mp3": lambda h: h.answer(200, VOCALS)})
    queue_stems(engine, server, vocal_url="/v.mp3")
    with engine.begin() as connection:
        connection.execute(text("UPDATE job_file SET expected_md5 = :md5"), {"md5": "0" * 32})
    files = UndeletableStore(tmp_path / "files")
    fetcher = loopback_fetcher()
    mirror = Mirror(engine, fetcher=fetcher, store=files, options=OPTIONS, worker="w1", clock=clock)
    try:
        taken = [mirror.run_once() for _ in range(OPTIONS.max_attempts + 1)]
        clock.now += LATER
        taken.append(mirror.run_once())
    finally:
        fetcher.close()

    [row] = file_rows(engine)
    # Given back uncounted, it was fetched again at once, forever, a new copy left each time.
    assert (row["status"], taken[1:]) == ("failed", [0] * (OPTIONS.max_attempts + 1)), (
        row,
        taken,
        stored_files(files.root),
    )


def test_the_run_loop_outlives_a_thousand_and_more_failed_claims(tmp_path: Path) -> None:
    # A database without the schema: every claim fails, as in a long outage.
    broken = create_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    fetcher = loopback_fetcher()
    mirror = Mirror(
        broken,
        fetcher=fetcher,
        store=LocalStore(tmp_path / "files"),
        options=replace(OPTIONS, poll_s=0.0),
        worker="w1",
    )
    failures: list[logging.LogRecord] = []
    raised: list[BaseException] = []

    class Counting(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            failures.append(record)
            if len(failures) == 1100:
                mirror.stop()

    def run() -> None:
        try:
            mirror.run()
        except BaseException as error:
            raised.append(error)

    logger = logging.getLogger("app.mirror.worker")
    handler = Counting(logging.ERROR)
    logger.addHandler(handler)
    running = threading.Thread(target=run)
    try:
        running.start()
        running.join()
    finally:
        logger.removeHandler(handler)
        fetcher.close()
        broken.dispose()

    assert (raised, len(failures)) == ([], 1100)


def test_a_settle_replayed_after_its_commit_keeps_the_copy_its_row_names(
    engine: Engine, mirror: Mirror, files: LocalStore, serve: Callable[..., FileServer]
) -> None:
    """A transaction can commit though its caller saw it fail (a connection lost on the COMMIT's
    answer): the worker settles the same outcomes again, is refused (the lease is gone), and
    must not take the copy for a stale attempt's and delete it."""
    server = serve({"/v.mp3": lambda h: h.answer(200, VOCALS)})
    queue_stems(engine, server, vocal_url="/v.mp3")
    [task] = mirror._exchange([], [], limit=1)
    outcome = mirror._attempts.outcome(task)
    mirror._exchange([outcome], [], limit=0)

    mirror._exchange([outcome], [], limit=0)  # the replay

    [row] = file_rows(engine)
    assert row["status"] == "stored"
    assert b"".join(files.open(row["storage_key"])) == VOCALS

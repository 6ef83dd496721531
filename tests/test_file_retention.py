"""Retention of stored files: only when asked, only copies stored before the cutoff, in batches,
one process at a time, the bytes deleted before the row says so; what the API then shows."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, text, update

from app import file_retention, models
from app.db import create_sync_engine
from app.file_retention import purge_files
from app.retention import PeriodicPurge, RetentionPlan, purge_bodies, retention_plan
from app.storage.local import TEMPORARY_PREFIX, LocalStore
from tests.api.payloads import suno_json
from tests.api.test_job_files import AUTH, set_files
from tests.conftest import Backend, open_client
from tests.ingest.file_rows import store as store_jobs
from tests.test_retention import LONG_AGO, bodies_left
from tests.test_retention import add_deliveries as add_old_deliveries

AGE = timedelta(days=90)
RECENTLY = datetime.now(UTC) - timedelta(days=1)
REMOVED = "removed by retention after 90d on <the purge's day>"
_DAY_WRITTEN = re.compile(r"(?<= on )\d{4}-\d{2}-\d{2}$")


def undated(error: str | None) -> str | None:
    """`error` with the day a purge wrote into it named, once it is checked to be the day the
    purge ran: today's (UTC) or, for a purge just before midnight, yesterday's."""
    if error is None or (written := _DAY_WRITTEN.search(error)) is None:
        return error
    today = datetime.now(UTC).date()
    assert written.group() in {today.isoformat(), (today - timedelta(days=1)).isoformat()}
    return error[: written.start()] + "<the purge's day>"


@dataclass(frozen=True)
class Copy:
    job_id: str
    position: int
    key: str
    content: bytes


@pytest.fixture
def files(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "files")


def stored_copies(
    engine: Engine, files: LocalStore, job_ids: list[str], *, at: datetime
) -> list[Copy]:
    """Jobs whose two outputs are each stored in `files`, as the mirror stores them, at `at`."""
    store_jobs(engine, *(suno_json(job_id) for job_id in job_ids))
    copies = []
    for job_id in job_ids:
        for position in (0, 1):
            content = f"{job_id}/{position}".encode() * 100
            written = files.write(f"suno/{job_id}/{position}-stem.mp3", [content])
            set_files(
                engine,
                job_id,
                "stored",
                position=position,
                bytes=written.size,
                sha256=written.sha256,
                md5=written.md5,
                content_type="audio/mpeg",
                stored_at=at,
                storage_key=written.key,
            )
            copies.append(Copy(job_id, position, written.key, content))
    return copies


def rows(engine: Engine) -> dict[tuple[str, int], tuple[Any, ...]]:
    with engine.connect() as connection:
        found = connection.execute(
            text(
                "SELECT job.job_id, position, status, error, storage_key, bytes IS NOT NULL,"
                " sha256 IS NOT NULL, stored_at IS NOT NULL"
                " FROM job_file JOIN job ON job.id = job_file.job_pk"
            )
        )
        return {
            (job_id, position): (status, undated(error), *rest)
            for job_id, position, status, error, *rest in found
        }


# A removed copy's row: skipped and why, no key; its size, digest and time kept.
REMOVED_ROW = ("skipped", REMOVED, None, True, True, True)


def kept(copy: Copy) -> tuple[Any, ...]:
    return ("stored", None, copy.key, True, True, True)


def on_disk(files: LocalStore, copy: Copy) -> bool:
    path = files.path(copy.key)
    return path.exists() and path.read_bytes() == copy.content


def no_pause(_seconds: float) -> None:
    pass


def test_copies_stored_before_the_cutoff_are_removed_and_their_rows_say_so(
    engine: Engine, files: LocalStore
) -> None:
    old = stored_copies(engine, files, ["t-old"], at=LONG_AGO)
    young = stored_copies(engine, files, ["t-young"], at=RECENTLY)
    store_jobs(engine, suno_json("t-pending"), suno_json("t-failed"))
    set_files(engine, "t-failed", "failed", error="404 Not Found")
    before = rows(engine)

    assert purge_files(engine, files, older_than=AGE) == 2

    after = rows(engine)
    assert {key: after[key] for key in after if key[0] == "t-old"} == {
        (copy.job_id, copy.position): REMOVED_ROW for copy in old
    }
    assert [on_disk(files, copy) for copy in old] == [False, False]
    # Younger copies and rows that store nothing are as they were.
    assert {key: after[key] for key in after if key[0] != "t-old"} == {
        key: before[key] for key in before if key[0] != "t-old"
    }
    assert [after[(copy.job_id, copy.position)] for copy in young] == [kept(copy) for copy in young]
    assert [on_disk(files, copy) for copy in young] == [True, True]


def test_a_second_run_finds_nothing_more(engine: Engine, files: LocalStore) -> None:
    stored_copies(engine, files, ["t-1", "t-2"], at=LONG_AGO)

    assert purge_files(engine, files, older_than=AGE) == 4
    assert purge_files(engine, files, older_than=AGE) == 0
    assert {row[0] for row in rows(engine).values()} == {"skipped"}


def test_each_batch_marks_a_bounded_number_of_rows(
    engine: Engine, files: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(file_retention, "BATCH_FILES", 3)
    stored_copies(engine, files, [f"t-{n}" for n in range(4)], at=LONG_AGO)
    marked: list[int] = []
    pauses: list[float] = []

    @event.listens_for(engine, "after_cursor_execute")
    def _batch(_conn: Any, cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("UPDATE job_file SET status"):
            marked.append(cursor.rowcount)

    try:
        assert purge_files(engine, files, older_than=AGE, pause=pauses.append) == 8
    finally:
        event.remove(engine, "after_cursor_execute", _batch)

    assert marked == [3, 3, 2]
    assert len(pauses) == 2


def test_one_process_removes_files_at_a_time(
    backend: Backend, engine: Engine, files: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(file_retention, "BATCH_FILES", 3)
    stored_copies(engine, files, ["t-1", "t-2"], at=LONG_AGO)
    replica = create_sync_engine(backend.settings())
    meanwhile: list[int | None] = []

    def another_replica_tries(_seconds: float) -> None:
        meanwhile.append(purge_files(replica, files, older_than=AGE, pause=no_pause))

    try:
        purged = purge_files(engine, files, older_than=AGE, pause=another_replica_tries)
        after = purge_files(replica, files, older_than=AGE, pause=no_pause)
    finally:
        replica.dispose()

    assert (purged, meanwhile, after) == (4, [None], 0)


def test_the_bodies_purge_and_the_files_purge_hold_leases_of_their_own(
    engine: Engine, files: LocalStore
) -> None:
    add_old_deliveries(engine, 1, first=LONG_AGO)
    stored_copies(engine, files, ["t-1"], at=LONG_AGO)

    def files_meanwhile(_seconds: float) -> None:
        nonlocal removed_meanwhile
        removed_meanwhile = purge_files(engine, files, older_than=AGE, pause=no_pause)

    removed_meanwhile: int | None = None
    # More than a batch of bodies (app.retention.BATCH_ROWS): the purge pauses between two.
    add_old_deliveries(engine, 1000, first=LONG_AGO + timedelta(days=1))
    purge_bodies(engine, older_than=AGE, pause=files_meanwhile)

    assert removed_meanwhile == 2


class FailingAt:
    """A LocalStore whose delete of one key fails, as a bucket refusing it would."""

    def __init__(self, files: LocalStore, key: str) -> None:
        self.files = files
        self.key = key

    def delete(self, key: str) -> None:
        if key == self.key:
            raise PermissionError(f"refused: {key}")
        self.files.delete(key)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.files, name)


def test_a_failed_delete_leaves_its_copy_stored_and_those_before_it_marked(
    engine: Engine, files: LocalStore
) -> None:
    ordered = stored_copies(engine, files, ["t-1", "t-2"], at=LONG_AGO)
    with engine.begin() as connection:  # a second apart: removed in this order
        for n, copy in enumerate(ordered):
            connection.execute(
                update(models.JobFile)
                .where(models.JobFile.storage_key == copy.key)
                .values(stored_at=LONG_AGO + timedelta(seconds=n))
            )
    refusing = FailingAt(files, ordered[2].key)

    with pytest.raises(PermissionError):
        purge_files(engine, refusing, older_than=AGE)  # type: ignore[arg-type]

    after = rows(engine)
    assert [after[(c.job_id, c.position)][0] for c in ordered] == [
        "skipped",
        "skipped",
        "stored",
        "stored",
    ]
    assert [on_disk(files, copy) for copy in ordered] == [False, False, True, True]
    # The next run, the store willing again, finishes.
    assert purge_files(engine, files, older_than=AGE) == 2
    assert {row[0] for row in rows(engine).values()} == {"skipped"}


def test_bytes_gone_under_a_row_still_stored_are_marked_by_the_next_run(
    engine: Engine, files: LocalStore
) -> None:
    """A run killed after its deletes, before its mark: the next run marks them."""
    [first, second] = stored_copies(engine, files, ["t-1"], at=LONG_AGO)
    files.delete(first.key)

    assert purge_files(engine, files, older_than=AGE) == 2
    assert {rows(engine)[(c.job_id, c.position)] for c in (first, second)} == {REMOVED_ROW}


@pytest.mark.anyio
async def test_the_api_shows_a_removed_copy_as_skipped_without_an_href(
    backend: Backend, engine: Engine, files: LocalStore
) -> None:
    stored_copies(engine, files, ["t-1"], at=LONG_AGO)
    href = "/v1/jobs/suno/t-1/files/1"
    async for client in open_client(backend.settings(files_dir=files.root)):
        served_before = await client.get(href, headers=AUTH)
        assert purge_files(engine, files, older_than=AGE) == 2
        job = (await client.get("/v1/jobs/suno/t-1", headers=AUTH)).json()
        served_after = await client.get(href, headers=AUTH)

    assert served_before.status_code == 200
    file = job["outputs"][1]["file"]
    assert (file["status"], undated(file["error"]), file["href"]) == ("skipped", REMOVED, None)
    # What was stored, and when, stays on record.
    assert file["bytes"] == len(served_before.content)
    assert file["stored_at"] == LONG_AGO.isoformat().replace("+00:00", "Z")
    assert (served_after.status_code, served_after.json()["error"]["code"]) == (404, "not_found")


def test_the_periodic_purge_removes_files_only_when_asked(
    backend: Backend, engine: Engine, files: LocalStore
) -> None:
    add_old_deliveries(engine, 1, first=LONG_AGO)
    copies = stored_copies(engine, files, ["t-1"], at=LONG_AGO)
    without = retention_plan(backend.settings(purge_deliveries_older_than="30d"), files)
    asked = retention_plan(
        backend.settings(purge_deliveries_older_than="30d", purge_files_older_than="90d"), files
    )
    assert without is not None and without.files_older_than is None
    assert asked is not None and asked.files_older_than == AGE

    bodies = bodies_left(engine)  # the old one, and those the jobs came in
    PeriodicPurge(backend.settings(), without).run_once(engine)

    assert bodies_left(engine) == bodies - 1
    assert [rows(engine)[(c.job_id, c.position)] for c in copies] == [kept(c) for c in copies]
    assert [on_disk(files, copy) for copy in copies] == [True, True]

    PeriodicPurge(backend.settings(), asked).run_once(engine)

    assert [rows(engine)[(c.job_id, c.position)] for c in copies] == [REMOVED_ROW] * 2
    assert [on_disk(files, copy) for copy in copies] == [False, False]


def test_the_periodic_purge_sweeps_temporaries_a_day_old(
    backend: Backend, engine: Engine, files: LocalStore
) -> None:
    [copy, _] = stored_copies(engine, files, ["t-1"], at=RECENTLY)
    directory = files.path(copy.key).parent
    stale, fresh = directory / f"{TEMPORARY_PREFIX}killed", directory / f"{TEMPORARY_PREFIX}live"
    stale.write_bytes(b"half")
    fresh.write_bytes(b"half")
    two_days_ago = time.time() - 2 * 86400
    os.utime(stale, (two_days_ago, two_days_ago))
    plan = retention_plan(backend.settings(mirror=True), files)
    assert plan == RetentionPlan(every=timedelta(hours=1), store=files)

    PeriodicPurge(backend.settings(), plan).run_once(engine)

    assert (stale.exists(), fresh.exists(), on_disk(files, copy)) == (False, True, True)


def test_nothing_to_do_starts_no_periodic_purge(backend: Backend, files: LocalStore) -> None:
    assert retention_plan(backend.settings(mirror=False), files) is None


def _purge_command(backend: Backend, files: LocalStore, cwd: Path, *options: str) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "app", "purge", *options],
        cwd=cwd,
        env=os.environ
        | {"STEMHOOK_DATABASE_URL": backend.url, "STEMHOOK_FILES_DIR": str(files.root)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_command_removes_files_only_when_asked(
    backend: Backend, engine: Engine, files: LocalStore, tmp_path: Path
) -> None:
    add_old_deliveries(engine, 1, first=LONG_AGO)
    copies = stored_copies(engine, files, ["t-1"], at=LONG_AGO)

    bodies = _purge_command(backend, files, tmp_path, "--deliveries-older-than", "30d")

    assert (bodies.returncode, bodies.stdout) == (
        0,
        "Dropped the bodies of 1 deliveries older than 30 days, 0:00:00.\n",
    )
    assert [on_disk(files, copy) for copy in copies] == [True, True]
    assert [rows(engine)[(c.job_id, c.position)] for c in copies] == [kept(c) for c in copies]

    both = _purge_command(
        backend, files, tmp_path, "--deliveries-older-than", "30d", "--files-older-than", "90d"
    )

    assert (both.returncode, both.stdout) == (
        0,
        "Dropped the bodies of 0 deliveries older than 30 days, 0:00:00.\n"
        "Removed 2 stored files older than 90d.\n",
    )
    assert [on_disk(files, copy) for copy in copies] == [False, False]
    assert [rows(engine)[(c.job_id, c.position)] for c in copies] == [REMOVED_ROW] * 2


def test_the_command_says_what_it_needs(
    backend: Backend, files: LocalStore, tmp_path: Path
) -> None:
    answer = _purge_command(backend, files, tmp_path)

    assert answer.returncode == 2
    assert "--deliveries-older-than AGE, --files-older-than AGE, or both" in answer.stderr

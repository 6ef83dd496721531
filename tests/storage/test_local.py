"""The directory store: streaming to disk as the chunks come, temporaries that never pass for
files and never outlive a failure, durability before `write` returns, and its root as a wall."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
import tracemalloc
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from app.storage import MissingFile, UnsafeKey
from app.storage.local import TEMPORARY_PREFIX, LocalStore
from tests.storage.test_contract import KEY, FetchFailed, failing_after

CHUNK = 64 * 1024
FIFTY_MB = 50 * 1024 * 1024


def every_file(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file())


def temporaries(root: Path) -> list[Path]:
    return [path for path in every_file(root) if path.name.startswith(TEMPORARY_PREFIX)]


def test_fifty_megabytes_go_to_disk_as_they_come(local_store: LocalStore) -> None:
    """Each chunk is on disk before the next is asked for, and the store's own allocations
    stay far below the file's size: memory does not grow with the file."""
    seen_on_disk: list[int] = []

    def source() -> Iterator[bytes]:
        for number in range(FIFTY_MB // CHUNK):
            if number:
                (partial,) = temporaries(local_store.root)
                seen_on_disk.append(partial.stat().st_size - number * CHUNK)
            yield bytes([number % 251]) * CHUNK

    tracemalloc.start()
    try:
        stored = local_store.write(KEY, source())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert stored.size == FIFTY_MB
    assert local_store.size(KEY) == FIFTY_MB
    # What the writer had received and not yet handed to the file: at most its small buffer.
    assert max(-behind for behind in seen_on_disk) <= io.DEFAULT_BUFFER_SIZE
    assert peak < 16 * CHUNK


@pytest.mark.parametrize("interruption", [FetchFailed, KeyboardInterrupt])
def test_a_failed_write_leaves_no_temporary(
    local_store: LocalStore, interruption: type[BaseException]
) -> None:
    def source() -> Iterator[bytes]:
        yield b"some bytes"
        assert temporaries(local_store.root), "the write should have begun"
        raise interruption

    with pytest.raises(interruption):
        local_store.write(KEY, source())

    assert every_file(local_store.root) == []


def test_a_failed_rewrite_leaves_only_the_earlier_file(local_store: LocalStore) -> None:
    local_store.write(KEY, [b"earlier"])

    with pytest.raises(FetchFailed):
        local_store.write(KEY, failing_after(b"x" * 500_000, 3))

    assert every_file(local_store.root) == [local_store.root / KEY]


def test_no_key_leads_outside_the_root(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "files")
    for key in ("../x", "files/../../x", "/etc/passwd", "a/../../b"):
        with pytest.raises(UnsafeKey):
            store.write(key, [b"escaped"])

    assert every_file(tmp_path) == []


def test_a_file_is_made_durable_before_it_is_named_and_its_name_after(
    local_store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fsync the data, rename, fsync the directory: so the database says "stored" only of a
    file a power cut cannot take back."""
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(descriptor: int) -> None:
        events.append(f"fsync {os.readlink(f'/proc/self/fd/{descriptor}')}")
        real_fsync(descriptor)

    def replace(source: str, destination: Path) -> None:
        events.append("rename")
        real_replace(source, destination)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    local_store.write("suno/job-2/0-vocals.mp3", [b"content"])

    job = local_store.root / "suno" / "job-2"
    assert events[-3].startswith(f"fsync {job}/{TEMPORARY_PREFIX}")
    assert events[-2:] == ["rename", f"fsync {job}"]
    # The new directories' own entries, each in its parent.
    assert f"fsync {local_store.root}" in events[:-3]
    assert f"fsync {local_store.root / 'suno'}" in events[:-3]


KILLED_MID_WRITE = """
import os, signal, sys
from pathlib import Path
from app.storage.local import LocalStore

def source():
    yield b"half of a file" * 1000
    os.kill(os.getpid(), signal.SIGKILL)
    yield b"never"

LocalStore(Path(sys.argv[1])).write("suno/job-3/0-vocals.mp3", source())
"""


def test_a_writer_killed_mid_write_leaves_a_temporary_the_sweep_removes(
    local_store: LocalStore,
) -> None:
    killed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(KILLED_MID_WRITE), str(local_store.root)],
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL

    (leftover,) = every_file(local_store.root)
    assert leftover.name.startswith(TEMPORARY_PREFIX)
    with pytest.raises(MissingFile):
        local_store.size("suno/job-3/0-vocals.mp3")

    assert local_store.sweep_temporaries(older_than=timedelta(hours=1)) == 0
    assert every_file(local_store.root) == [leftover]
    assert local_store.sweep_temporaries(older_than=timedelta(0)) == 1
    assert every_file(local_store.root) == []


def test_the_sweep_spares_files_young_temporaries_and_busy_directories(
    local_store: LocalStore,
) -> None:
    local_store.write("suno/kept/0-vocals.mp3", [b"an old file, not a temporary"])
    day_ago = os.stat(local_store.root).st_mtime - 86_400
    os.utime(local_store.root / "suno/kept/0-vocals.mp3", (day_ago, day_ago))
    stale = local_store.root / "suno/dead" / f"{TEMPORARY_PREFIX}stale"
    young = local_store.root / "suno/busy" / f"{TEMPORARY_PREFIX}young"
    for temporary in (stale, young):
        temporary.parent.mkdir(parents=True)
        temporary.write_bytes(b"partial")
    os.utime(stale, (day_ago, day_ago))
    os.utime(stale.parent, (day_ago, day_ago))
    emptied = local_store.root / "medialab/deleted-job"
    emptied.mkdir(parents=True)
    os.utime(emptied, (day_ago, day_ago))

    assert local_store.sweep_temporaries(older_than=timedelta(hours=1)) == 1

    assert every_file(local_store.root) == [young, local_store.root / "suno/kept/0-vocals.mp3"]
    assert not emptied.exists()
    # The stale temporary's directory was touched by the sweep's own removal: a later sweep.
    assert stale.parent.exists()

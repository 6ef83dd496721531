"""The directory store keeps a floor of free space (STEMHOOK_FILES_MIN_FREE_BYTES): a write that
would take the file system below it stops, and leaves nothing behind, like any failed write.

The free space is a test's figure, never a filled disk; one test asks the real file system for
more than any has free."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.config import Settings
from app.storage import StorageFull, open_store
from app.storage import local as local_module
from app.storage.local import LocalStore
from tests.storage.test_contract import KEY
from tests.storage.test_local import every_file

FLOOR = 10_000


class Disk:
    """Free space that a test sets, counting how often the store looked."""

    def __init__(self, free: int) -> None:
        self.free = free
        self.looks = 0

    def __call__(self, root: Path) -> int:
        self.looks += 1
        return self.free


def test_a_write_below_the_floor_is_refused_before_a_byte_and_names_no_full_path(
    tmp_path: Path,
) -> None:
    store = LocalStore(tmp_path / "files", min_free_bytes=FLOOR, free_bytes=Disk(FLOOR - 1))

    with pytest.raises(StorageFull) as full:
        store.write(KEY, [b"some bytes"])

    assert str(full.value) == (
        f"less than {FLOOR} bytes free on the file system of the store 'files'"
        " (STEMHOOK_FILES_MIN_FREE_BYTES)"
    )
    assert every_file(store.root) == []


def test_a_write_at_the_floor_goes_through(tmp_path: Path) -> None:
    disk = Disk(FLOOR)
    store = LocalStore(tmp_path / "files", min_free_bytes=FLOOR, free_bytes=disk)

    assert store.write(KEY, [b"some bytes"]).size == 10
    assert disk.looks == 1


def test_space_running_out_mid_write_stops_it_and_keeps_the_earlier_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local_module, "FREE_SPACE_CHECKED_EVERY", 4096)
    disk = Disk(FLOOR)
    store = LocalStore(tmp_path / "files", min_free_bytes=FLOOR, free_bytes=disk)
    store.write(KEY, [b"earlier"])
    given: list[int] = []

    def source() -> Iterator[bytes]:
        for number in range(100):
            given.append(number)
            if number == 10:
                disk.free = FLOOR - 1  # someone else filled the disk meanwhile
            yield b"x" * 1024

    with pytest.raises(StorageFull):
        store.write(KEY, source())

    # Looked at before the first byte, then every 4 KiB: the 12th KiB found the disk full.
    assert len(given) == 12
    assert every_file(store.root) == [store.root / KEY]
    assert (store.root / KEY).read_bytes() == b"earlier"


def test_a_floor_of_zero_never_looks(tmp_path: Path) -> None:
    disk = Disk(0)
    store = LocalStore(tmp_path / "files", min_free_bytes=0, free_bytes=disk)

    store.write(KEY, [b"some bytes"])

    assert disk.looks == 0


def test_the_setting_reaches_the_store_and_the_real_file_system_is_asked(
    tmp_path: Path,
) -> None:
    """No file system here has a pebibyte free."""
    settings = Settings(_env_file=None, files_dir=tmp_path / "files", files_min_free_bytes=1024**5)  # type: ignore[call-arg]

    with pytest.raises(StorageFull):
        open_store(settings).write(KEY, [b"some bytes"])

    roomy = Settings(_env_file=None, files_dir=tmp_path / "files", files_min_free_bytes=1)  # type: ignore[call-arg]
    assert open_store(roomy).write(KEY, [b"some bytes"]).size == 10


def test_the_floor_defaults_to_a_gibibyte_and_is_never_negative() -> None:
    assert Settings(_env_file=None).files_min_free_bytes == 1024**3  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="files_min_free_bytes"):
        Settings(_env_file=None, files_min_free_bytes=-1)  # type: ignore[call-arg]

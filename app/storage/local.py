"""A directory of files (STEMHOOK_FILES_DIR): each written to a temporary beside its final
name, made durable, then renamed over it, so a reader sees the old file or the new, whole.

A write stops (StorageFull) rather than take the free space of the directory's file system
below a floor (STEMHOOK_FILES_MIN_FREE_BYTES): a full disk would fail whatever else writes there,
the database and its journal included, not only the next file.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterable
from contextlib import suppress
from datetime import timedelta
from pathlib import Path
from stat import S_ISREG
from typing import BinaryIO

from app.storage.keys import check_key
from app.storage.store import MissingFile, StorageFull, StoredFile, UnsafeKey
from app.storage.streams import Chunks, Digests, check_range

# No key can begin with "." (app/storage/keys.py), so nothing named so is ever taken for a file.
TEMPORARY_PREFIX = ".stemhook-partial-"
_DIRECTORY_ATTEMPTS = 3
# Bytes written between two looks at the free space and two syncs (_written_back): a statvfs
# call is cheap, yet one per 64 KiB chunk would be a syscall for nothing; the floor absorbs
# what each of the concurrent writers (up to 64 in a process) writes in between.
FREE_SPACE_CHECKED_EVERY = 8 * 1024 * 1024


def _available_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still take on `path`'s file system."""
    status = os.statvfs(path)
    return status.f_bavail * status.f_frsize


class LocalStore:
    def __init__(
        self,
        root: Path,
        *,
        min_free_bytes: int = 0,
        free_bytes: Callable[[Path], int] = _available_bytes,
    ) -> None:
        """`min_free_bytes`: the free space a write never takes the file system below (0: no
        floor), as `free_bytes` measures it."""
        # Made by the first write: a process that only serves files creates nothing.
        self.root = Path(os.path.abspath(root))
        self._min_free_bytes = min_free_bytes
        self._free_bytes = free_bytes

    def path(self, key: str) -> Path:
        """Where the key's file lives; UnsafeKey for any key that would lead outside the root."""
        path = Path(os.path.normpath(self.root / check_key(key)))
        if self.root not in path.parents:
            raise UnsafeKey(f"{key!r} leads outside {self.root}")
        return path

    def write(self, key: str, chunks: Iterable[bytes]) -> StoredFile:
        final = self.path(key)
        descriptor, temporary = self._temporary_beside(final)
        digests = Digests()
        try:
            with os.fdopen(descriptor, "wb") as out:
                self._check_free_space()
                unchecked = 0
                for chunk in chunks:
                    unchecked += len(chunk)
                    if unchecked >= FREE_SPACE_CHECKED_EVERY:
                        self._check_free_space()
                        _written_back(out)
                        unchecked = 0
                    digests.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
                _dropped_from_cache(out)
            os.replace(temporary, final)
        except BaseException:
            with suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
        # The rename itself must survive a power cut before the database says "stored".
        _fsync_directory(final.parent)
        return StoredFile(key=key, size=digests.size, sha256=digests.sha256, md5=digests.md5)

    def open(self, key: str, start: int = 0, end: int | None = None) -> Chunks:
        check_range(start, end)
        try:
            stream = self.path(key).open("rb")
        except (FileNotFoundError, IsADirectoryError):
            raise MissingFile(key) from None
        stream.seek(start)
        return Chunks(stream, None if end is None else end - start)

    def size(self, key: str) -> int:
        try:
            status = self.path(key).stat()
        except FileNotFoundError:
            raise MissingFile(key) from None
        if not S_ISREG(status.st_mode):  # a directory of other keys is no file
            raise MissingFile(key)
        return status.st_size

    def delete(self, key: str) -> None:
        path = self.path(key)
        with suppress(FileNotFoundError):
            path.unlink()
            _fsync_directory(path.parent)

    def sweep_temporaries(self, older_than: timedelta) -> int:
        """Removes stale temporaries, then directories left empty (a deleted job's) that are as
        old; a writer still at work keeps touching its temporary, so stays younger."""
        cutoff = time.time() - older_than.total_seconds()
        removed = 0
        for directory, subdirectories, names in os.walk(self.root, topdown=False):
            for name in names:
                path = Path(directory, name)
                if name.startswith(TEMPORARY_PREFIX) and _older(path, cutoff):
                    with suppress(FileNotFoundError):
                        path.unlink()
                        removed += 1
            for name in subdirectories:
                path = Path(directory, name)
                if _older(path, cutoff):
                    with suppress(OSError):  # not empty, or gone already
                        path.rmdir()
        return removed

    def _check_free_space(self) -> None:
        if self._min_free_bytes and self._free_bytes(self.root) < self._min_free_bytes:
            raise StorageFull(
                f"less than {self._min_free_bytes} bytes free on the file system of the store"
                f" {self.root.name!r} (STEMHOOK_FILES_MIN_FREE_BYTES)"
            )

    def _temporary_beside(self, final: Path) -> tuple[int, str]:
        self.root.mkdir(parents=True, exist_ok=True)
        # A sweep may remove an empty directory between making it and creating the temporary.
        for _ in range(_DIRECTORY_ATTEMPTS - 1):
            _make_directories(self.root, final.parent)
            with suppress(FileNotFoundError):
                return tempfile.mkstemp(prefix=TEMPORARY_PREFIX, dir=final.parent)
        _make_directories(self.root, final.parent)
        return tempfile.mkstemp(prefix=TEMPORARY_PREFIX, dir=final.parent)


def _written_back(out: BinaryIO) -> None:
    """What was written so far on disk, and out of the page cache. A large file written in one
    go leaves gigabytes dirty, and the kernel then writes them back in bulk: every commit's
    flush (the callbacks', on the same disk) waits behind them, hundreds of milliseconds
    (bench/mirror). Synced every few MiB, a download never holds more than that in the queue."""
    out.flush()
    os.fdatasync(out.fileno())
    _dropped_from_cache(out)


def _dropped_from_cache(out: BinaryIO) -> None:
    # Advice only: a file system that refuses it must not fail the write.
    with suppress(OSError):
        os.posix_fadvise(out.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def _make_directories(root: Path, directory: Path) -> None:
    missing = []
    while directory != root and not directory.is_dir():
        missing.append(directory)
        directory = directory.parent
    for created in reversed(missing):
        with suppress(FileExistsError):
            created.mkdir()
        # A new directory's entry is durable only once its parent is synced.
        _fsync_directory(created.parent)


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _older(path: Path, cutoff: float) -> bool:
    try:
        return path.lstat().st_mtime < cutoff
    except FileNotFoundError:
        return False

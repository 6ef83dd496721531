"""What every file store promises, and the errors it raises.

    StorageError
    ├── MissingFile   no file under the key (reading it, or asking its size)
    ├── UnsafeKey     a key that is not relative, plain and bounded (also a ValueError)
    └── StorageFull   writing would leave the disk with less free space than its floor

Anything else a backend raises (OSError, botocore's errors) passes through unchanged: the
caller retries a failed write as a whole, since a failed write leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from app.storage.streams import Chunks

# A temporary this old belongs to no live writer: a fetch's reads time out within minutes, and
# the slowest upload a bucket starts (its multipart upload dated from its start) ends in hours.
STALE_TEMPORARIES = timedelta(days=1)


class StorageError(Exception):
    """The root of the file stores' own errors."""


class MissingFile(StorageError, LookupError):
    def __init__(self, key: str) -> None:
        super().__init__(f"no stored file under {key!r}")
        self.key = key


class UnsafeKey(StorageError, ValueError):
    pass


class StorageFull(StorageError):
    """A write stopped before it filled the disk; one later, after space was freed, may pass."""


@dataclass(frozen=True, slots=True)
class StoredFile:
    key: str
    size: int
    sha256: str
    md5: str


class FileStore(Protocol):
    """Where mirrored result files live. Keys are relative paths such as
    `suno/<job>/0-vocals.mp3` (app/storage/keys.py makes them safe)."""

    def write(self, key: str, chunks: Iterable[bytes]) -> StoredFile:
        """Stream the chunks under the key, replacing any file there at once when all have
        arrived and are durable; if the iterator or the store fails, nothing new is left under
        the key (nor beside it) and the exception propagates."""
        ...

    def open(self, key: str, start: int = 0, end: int | None = None) -> Chunks:
        """The bytes from `start` up to, not including, `end` (the end of the file when None),
        as slicing counts them: a range past the end is cut short. Raises MissingFile."""
        ...

    def size(self, key: str) -> int:
        """The file's length in bytes. Raises MissingFile."""
        ...

    def delete(self, key: str) -> None:
        """Remove the file; a key with no file is already what was asked (a retried purge)."""
        ...

    def sweep_temporaries(self, older_than: timedelta) -> int:
        """Remove what writers that died mid-write left, once it is older than `older_than`
        (younger ones may belong to a writer still at work in another process); the count."""
        ...

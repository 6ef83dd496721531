"""Bytes on their way in (hashed as they pass) and on their way out (read a chunk at a time)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Protocol, Self

CHUNK_SIZE = 64 * 1024


class Digests:
    """The size, SHA-256 and MD5 of everything fed to it, kept without keeping the bytes."""

    def __init__(self) -> None:
        self.size = 0
        self._sha256 = hashlib.sha256()
        # MD5 is what S3-style ETags and many providers' manifests state, not a security check.
        self._md5 = hashlib.md5(usedforsecurity=False)

    def update(self, chunk: bytes | bytearray | memoryview) -> None:
        self.size += len(chunk)
        self._sha256.update(chunk)
        self._md5.update(chunk)

    @property
    def sha256(self) -> str:
        return self._sha256.hexdigest()

    @property
    def md5(self) -> str:
        return self._md5.hexdigest()


class Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...

    def close(self) -> None: ...


class Chunks(Iterator[bytes]):
    """At most `length` bytes (all, when None) of an open stream, CHUNK_SIZE at a time. The
    stream is closed when the bytes run out, or by close() (or `with`) when the reader stops
    early, as a client that hangs up does."""

    def __init__(self, stream: Readable, length: int | None, chunk_size: int = CHUNK_SIZE) -> None:
        self._stream = stream
        self._remaining = length
        self._chunk_size = chunk_size
        self._closed = False

    def __next__(self) -> bytes:
        if self._closed:
            raise StopIteration
        want = self._chunk_size
        if self._remaining is not None:
            want = min(want, self._remaining)
        chunk = self._stream.read(want) if want > 0 else b""
        if not chunk:
            self.close()
            raise StopIteration
        if self._remaining is not None:
            self._remaining -= len(chunk)
        return chunk

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._stream.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def check_range(start: int, end: int | None) -> None:
    if start < 0 or (end is not None and end < start):
        raise ValueError(f"not a range of bytes: {start} to {end}")


def empty() -> Chunks:
    return Chunks(_Nothing(), 0)


class _Nothing:
    def read(self, size: int, /) -> bytes:
        return b""

    def close(self) -> None:
        pass

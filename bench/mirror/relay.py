"""Keeping a download under way when asked: a thread that posts the callback naming the next
large file as soon as the last one is stored, so that the mirror streams one file after another.

Between two files the mirror idles until its next poll (app/background.py polls once a
second), so the bytes it wrote (written_bytes) are what tells how much of a window it spent
downloading.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx

from bench.ingest.databases import Scratch

_POLL_S = 0.1
# How often the files' statuses are read while one streams in: each read is a connection of
# its own, which on PostgreSQL costs the server a backend's start, every window streaming and
# none idle; the mirror looks at its queue once a second anyway.
_STATUS_POLL_S = 1.0
# Far beyond a 1 GiB file's download on a quiet machine: one this slow has stalled.
_PATIENCE_S = 300


class Relay:
    """`with Relay(url, scratch, post) as relay:`, then `with relay.streaming(files_dir):` around
    each window that must see files streaming, and `relay.idle()` before one that must not;
    `post(n, client)` sends the n-th callback, each naming one file. Leaving stops posting (the
    file under way is left to the server's stop)."""

    def __init__(
        self, url: str, scratch: Scratch, post: Callable[[int, httpx.Client], None]
    ) -> None:
        self._url = url
        self._scratch = scratch
        self._post = post
        self._stop = threading.Event()
        self._go = threading.Event()
        # Held from seeing _go set until the post is counted: idle() then never misses one.
        self._posting = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="relay", daemon=True)
        self._error: BaseException | None = None
        self.posted = 0
        self.stored = 0

    def __enter__(self) -> Relay:
        self._thread.start()
        return self

    def __exit__(self, *_exception: object) -> None:
        self._stop.set()
        self._thread.join()
        self._raise()

    @contextmanager
    def streaming(self, files_dir: Path) -> Iterator[None]:
        """Posting, from when a new file's bytes reach the store until the block ends."""
        before = bytes_in(files_dir)
        self._go.set()
        try:
            self._until(lambda: bytes_in(files_dir) > before, f"no new bytes in {files_dir}")
            yield
        finally:
            with self._posting:
                self._go.clear()

    def idle(self) -> None:
        """Until every file posted is stored: the mirror has nothing left to fetch."""
        self._until(lambda: self.stored >= self.posted, "the files posted not all stored")

    def _until(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + _PATIENCE_S
        while not condition():
            self._raise()
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} after {_PATIENCE_S} s")
            time.sleep(_POLL_S)

    def _run(self) -> None:
        try:
            with httpx.Client(base_url=self._url, timeout=30) as http:
                while not self._stop.is_set():
                    if not self._go.wait(_POLL_S):
                        continue
                    with self._posting:
                        if not self._go.is_set():
                            continue
                        self.posted += 1
                    self._post(self.posted - 1, http)
                    while self.stored < self.posted and not self._stop.wait(_STATUS_POLL_S):
                        statuses = self._scratch.file_statuses()
                        if statuses.get("failed"):
                            raise RuntimeError(f"a streamed file failed: {statuses}")
                        self.stored = statuses.get("stored", 0)
        except BaseException as error:  # raised again on the benchmark's thread
            self._error = error

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error


def bytes_in(directory: Path) -> int:
    """The bytes of the files under `directory`, partly written ones included."""
    total = 0
    for parent, _, names in os.walk(directory):
        for name in names:
            # A temporary renamed since the listing is missed: a rough figure, for a start.
            with suppress(FileNotFoundError):
                total += os.stat(os.path.join(parent, name)).st_size
    return total


def written_bytes(pid: int) -> int:
    """What the process has written so far through write(2) and its kin (/proc/<pid>/io): for
    the mirror, the files it stored, and a little of its database and logs."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        name, _, value = line.partition(":")
        if name == "wchar":
            return int(value)
    raise ValueError(f"/proc/{pid}/io has no wchar")

"""Keeping a download under way: a thread that posts the callback naming the next large file as
soon as the last one is stored, so that the mirror streams one file after another.

Between two files the mirror idles until its next poll (app/background.py polls once a
second), so the bytes it wrote (written_bytes) are what tells how much of a window it spent
downloading.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

import httpx

from bench.ingest.databases import Scratch

_POLL_S = 0.1
_START_TIMEOUT_S = 60


class Relay:
    """`with Relay(url, scratch, post) as relay:`; `post(n, client)` sends the n-th callback, each
    naming one file. Leaving stops posting (the file under way is left to the server's stop)."""

    def __init__(
        self, url: str, scratch: Scratch, post: Callable[[int, httpx.Client], None]
    ) -> None:
        self._url = url
        self._scratch = scratch
        self._post = post
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="relay", daemon=True)
        self._error: BaseException | None = None
        self.stored = 0

    def __enter__(self) -> Relay:
        self._thread.start()
        return self

    def __exit__(self, *_exception: object) -> None:
        self._stop.set()
        self._thread.join()
        self._raise()

    def until_streaming(self, files_dir: Path) -> None:
        """Until the first file's bytes reach the store."""
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not bytes_in(files_dir):
            self._raise()
            if time.monotonic() > deadline:
                raise RuntimeError(f"no bytes in {files_dir} after {_START_TIMEOUT_S} s")
            time.sleep(_POLL_S)

    def _run(self) -> None:
        try:
            with httpx.Client(base_url=self._url, timeout=30) as http:
                posted = 0
                while not self._stop.is_set():
                    self._post(posted, http)
                    posted += 1
                    while self.stored < posted and not self._stop.wait(_POLL_S):
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

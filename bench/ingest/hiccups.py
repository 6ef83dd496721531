"""What the machine itself did during a paced run, so that its stalls are not read as the server's.

Three measures, taken beside the run:
- hiccups (after jHiccup): a thread of this process asks to sleep 1 ms, over and over, and
  records how much later than that it woke. A stall of the whole machine (a vCPU the hypervisor
  descheduled, a core held by other work) holds it as it holds the server, so a server latency
  no longer than the longest hiccup may be the machine's. Its own cost: ~1,000 short wake-ups a
  second, next to the paced run's wrk threads (64).
- steal: the share of the cores' time the hypervisor gave to other guests (/proc/stat), which
  this guest cannot use whatever runs in it.
- the disk: every 50 ms a 4 KB append to a file beside the SQLite databases is made durable
  (fdatasync), as a commit is, and the longest such sync is kept. A disk that stalls holds
  every commit on it meanwhile, whichever process makes it, so a server latency no longer
  than the longest sync may be the disk's (PostgreSQL's too where its data lies on the same
  disk: the report's Machine section says). Its own cost: 20 syncs a second, next to the
  hundreds a second of the server under test.
stemhook's own slow-commit warnings during the run (Server.slow_commits_ms) say which of its
commits waited.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

_TICK_S = 0.001
_SYNC_EVERY_S = 0.05
_PAGE = b"\0" * 4096
_STEAL_FIELD = 7  # of the "cpu" line of /proc/stat, after the name: user nice system idle ...


@dataclass(frozen=True)
class Machine:
    longest_hiccup_ms: float  # the longest a 1 ms sleep overslept
    hiccup_ms_over_20: float  # all the oversleeping beyond 20 ms, added up
    steal_pct: float  # of the cores' time, over the run
    longest_sync_ms: float  # the longest a 4 KB append took to be made durable


class MachineWatch:
    """`with MachineWatch(directory) as watch: ...` then `watch.machine`; the disk is the one
    holding `directory`."""

    def __init__(self, directory: Path) -> None:
        self._stop = threading.Event()
        self._longest_s = 0.0
        self._over_20_s = 0.0
        self._longest_sync_s = 0.0
        self._sync_path = directory / "machine-watch.sync"
        self._sync_failed: OSError | None = None
        self._threads = [
            threading.Thread(target=self._meter, name="hiccup-meter", daemon=True),
            threading.Thread(target=self._sync_meter, name="sync-meter", daemon=True),
        ]
        self._cpu_before: list[int] = []
        self.machine: Machine | None = None

    def __enter__(self) -> MachineWatch:
        self._cpu_before = _cpu_ticks()
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exception: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        if self._sync_failed is not None:
            raise self._sync_failed  # a disk that could not be measured is not a quiet one
        spent = [
            after - before for before, after in zip(self._cpu_before, _cpu_ticks(), strict=True)
        ]
        steal = 100 * spent[_STEAL_FIELD] / sum(spent) if sum(spent) else 0.0
        self.machine = Machine(
            longest_hiccup_ms=self._longest_s * 1000,
            hiccup_ms_over_20=self._over_20_s * 1000,
            steal_pct=steal,
            longest_sync_ms=self._longest_sync_s * 1000,
        )

    def _meter(self) -> None:
        while not self._stop.is_set():
            asked = time.monotonic()
            time.sleep(_TICK_S)
            late = time.monotonic() - asked - _TICK_S
            self._longest_s = max(self._longest_s, late)
            if late > 0.020:
                self._over_20_s += late - 0.020

    def _sync_meter(self) -> None:
        try:
            with self._sync_path.open("ab") as file:
                while not self._stop.wait(_SYNC_EVERY_S):
                    self._longest_sync_s = max(self._longest_sync_s, durable_append(file))
        except OSError as exc:
            self._sync_failed = exc
        finally:
            self._sync_path.unlink(missing_ok=True)


def durable_append(file: BinaryIO) -> float:
    """Seconds a 4 KB append took to be made durable, as SQLite makes a commit in WAL mode at
    FULL (fdatasync)."""
    file.write(_PAGE)
    file.flush()
    started = time.perf_counter()
    os.fdatasync(file.fileno())
    return time.perf_counter() - started


def _cpu_ticks() -> list[int]:
    first = Path("/proc/stat").read_text().split("\n", 1)[0]  # "cpu  user nice system ..."
    return [int(field) for field in first.split()[1:]]

"""What the machine itself did during a paced run, so that its stalls are not read as the server's.

Two measures, taken beside the run:
- hiccups (after jHiccup): a thread of this process asks to sleep 1 ms, over and over, and
  records how much later than that it woke. A stall of the whole machine (a vCPU the hypervisor
  descheduled, a core held by other work) holds it as it holds the server, so a server latency
  no longer than the longest hiccup may be the machine's. Its own cost: ~1,000 short wake-ups a
  second, next to the paced run's 32 wrk threads.
- steal: the share of the cores' time the hypervisor gave to other guests (/proc/stat), which
  this guest cannot use whatever runs in it.
A commit's fsync stalling on the disk shows in neither: the fsync probe before the runs
(facts.py) says how often the disk stalls, and stemhook's own slow-commit warnings during the run
(Server.slow_commits_ms) say when it did.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

_TICK_S = 0.001
_STEAL_FIELD = 7  # of the "cpu" line of /proc/stat, after the name: user nice system idle ...


@dataclass(frozen=True)
class Machine:
    longest_hiccup_ms: float  # the longest a 1 ms sleep overslept
    hiccup_ms_over_20: float  # all the oversleeping beyond 20 ms, added up
    steal_pct: float  # of the cores' time, over the run


class MachineWatch:
    """`with MachineWatch() as watch: ...` then `watch.machine`."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._longest_s = 0.0
        self._over_20_s = 0.0
        self._thread = threading.Thread(target=self._meter, name="hiccup-meter", daemon=True)
        self._cpu_before: list[int] = []
        self.machine: Machine | None = None

    def __enter__(self) -> MachineWatch:
        self._cpu_before = _cpu_ticks()
        self._thread.start()
        return self

    def __exit__(self, *_exception: object) -> None:
        self._stop.set()
        self._thread.join()
        spent = [
            after - before for before, after in zip(self._cpu_before, _cpu_ticks(), strict=True)
        ]
        steal = 100 * spent[_STEAL_FIELD] / sum(spent) if sum(spent) else 0.0
        self.machine = Machine(
            longest_hiccup_ms=self._longest_s * 1000,
            hiccup_ms_over_20=self._over_20_s * 1000,
            steal_pct=steal,
        )

    def _meter(self) -> None:
        while not self._stop.is_set():
            asked = time.monotonic()
            time.sleep(_TICK_S)
            late = time.monotonic() - asked - _TICK_S
            self._longest_s = max(self._longest_s, late)
            if late > 0.020:
                self._over_20_s += late - 0.020


def _cpu_ticks() -> list[int]:
    first = Path("/proc/stat").read_text().split("\n", 1)[0]  # "cpu  user nice system ..."
    return [int(field) for field in first.split()[1:]]

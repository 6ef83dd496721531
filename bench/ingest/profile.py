"""Where a stemhook process spends its time under load: py-spy profiles, summarized per thread.

Two recordings follow each other under the same load, both at 100 Hz and aggregated by
function (`--function`):
- wall: every thread, idle ones included (`--idle`): the writer thread's time waiting for a
  commit's fsync is exactly what matters, and without `--idle` it would be dropped;
- GIL: only samples of the thread holding the GIL (`--gil`). The main thread (HTTP, parsing)
  and the writer thread (SQL) share one interpreter: time the writer spends in a statement
  without holding the GIL is SQLite's own work or a wait for the GIL to come back.

For the main thread and the writer the summary lists
- a breakdown: idle (main: a `Runner.run` leaf, no Python running, uvloop waiting for I/O or in
  its own C code; writer: waiting for work in `_take_batch`), and for the main thread the share
  inside the endpoint function (FastAPI's `run_endpoint_function`) against the busy time around
  it (uvicorn's protocol, the middleware stack, routing, the answer);
- inclusive frames: stemhook's own functions (app/...) and the library functions they call
  directly, by the share of the thread's samples with the function on the stack, leaving out
  the trunk every sample shares;
- leaf frames: the innermost Python frame, with its share of wall samples and of GIL samples.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

PY_SPY = Path(sys.executable).parent / "py-spy"
THREADS = ("MainThread", "stemhook-writer")
OWN = "app/"  # py-spy shortens paths to the package: stemhook's frames start with it
IDLE_LEAVES = ("Runner.run (asyncio/runners.py", "Writer._take_batch (app/ingest/writer.py")
ENDPOINT = "run_endpoint_function (fastapi/routing.py"
TRUNK = 0.995  # frames on (almost) every sample of a thread, such as `main`, say nothing


@dataclass(frozen=True)
class ThreadProfile:
    thread: str
    samples: int
    cpu: float  # share of one core the thread used while the wall samples were taken
    breakdown: list[tuple[str, float]]  # (what, share of the thread's wall samples)
    inclusive: list[tuple[str, float]]
    leaves: list[tuple[str, float, float]]  # (frame, wall share, GIL-holding share)


@dataclass(frozen=True)
class Profile:
    threads: list[ThreadProfile]
    process_cpu: float  # share of one core, all threads together
    rate: float  # requests per second meanwhile

    def cpu_us_per_request(self, share: float) -> float:
        return share / self.rate * 1e6


@dataclass
class _Stacks:
    """One recording: per thread, sample counts by stack."""

    samples: Counter[str]
    inclusive: dict[str, Counter[str]]
    leaves: dict[str, Counter[str]]
    idle: Counter[str]
    endpoint: Counter[str]
    tids: dict[str, int]


def record(pid: int, *, seconds: int, output: Path, gil: bool) -> None:
    options = ["--gil"] if gil else ["--idle"]
    subprocess.run(
        [str(PY_SPY), "record", "--pid", str(pid), "--duration", str(seconds)]
        + ["--format", "raw", "--output", str(output), "--threads", "--function", *options],
        check=True,
        capture_output=True,
    )


def thread_cpu_s(pid: int) -> dict[int, float]:
    """CPU seconds used so far by each thread of the process, by native thread id (Linux)."""
    ticks = os.sysconf("SC_CLK_TCK")
    used = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with suppress(OSError):  # a thread that ended meanwhile
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()
            used[int(tid)] = (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    return used


def summarize(
    wall: Path, gil: Path, *, cpu: dict[int, float], rate: float, top: int = 15
) -> Profile:
    """`cpu`: each thread's share of one core during the wall recording, by native id (the
    id py-spy prints)."""
    walls, gils = _read(wall), _read(gil)
    profiles = []
    for thread in THREADS:
        total = walls.samples[thread]
        if not total:
            continue
        idle = walls.idle[thread] / total
        breakdown = [("idle", idle), ("busy", 1 - idle)]
        if thread == "MainThread":
            endpoint = walls.endpoint[thread] / total
            breakdown += [("in the endpoint", endpoint), ("around it", 1 - idle - endpoint)]
        breakdown.append(("holding the GIL", gils.samples[thread] / total))
        branches = [(f, n / total) for f, n in walls.inclusive[thread].most_common()]
        inclusive = [(frame, share) for frame, share in branches if share < TRUNK][:top]
        held = gils.leaves.get(thread, Counter())
        leaves = [
            (frame, count / total, held[frame] / total)
            for frame, count in walls.leaves[thread].most_common(top)
        ]
        used = cpu.get(walls.tids[thread], 0.0)
        profiles.append(ThreadProfile(thread, total, used, breakdown, inclusive, leaves))
    return Profile(profiles, sum(cpu.values()), rate)


def _read(raw: Path) -> _Stacks:
    """py-spy's raw format, with --threads: `thread (tid): name;frame;...;frame count`."""
    stacks = _Stacks(Counter(), {}, {}, Counter(), Counter(), {})
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        thread_frame, *frames = stack.split(";")
        tid, _, thread = thread_frame.partition(": ")
        if thread not in THREADS or not frames:
            continue
        count = int(count_text)
        stacks.tids[thread] = int(tid.removeprefix("thread (").removesuffix(")"))
        stacks.samples[thread] += count
        shown = {
            frame
            for caller, frame in zip([""] + frames, frames, strict=False)
            if _own(frame) or _own(caller)
        }
        stacks.inclusive.setdefault(thread, Counter()).update(dict.fromkeys(shown, count))
        stacks.leaves.setdefault(thread, Counter())[frames[-1]] += count
        if frames[-1].startswith(IDLE_LEAVES):
            stacks.idle[thread] += count
        if any(frame.startswith(ENDPOINT) for frame in frames):
            stacks.endpoint[thread] += count
    return stacks


def _own(frame: str) -> bool:
    return frame.partition(" (")[2].startswith(OWN)


def render(profile: Profile) -> str:
    """Plain text for the terminal."""
    lines = [
        f"process: {profile.process_cpu:.0%} of a core at {profile.rate:,.0f} req/s,"
        f" {profile.cpu_us_per_request(profile.process_cpu):.0f} µs of CPU per request"
    ]
    for p in profile.threads:
        lines.append(f"{p.thread} ({p.samples} samples): " + breakdown(p))
        per_request = profile.cpu_us_per_request(p.cpu)
        lines.append(f"  on CPU {p.cpu:.0%} of a core, {per_request:.0f} µs per request")
        lines.append("  top inclusive frames (stemhook's own, and what they call)")
        lines.extend(f"    {share:6.1%}  {frame}" for frame, share in p.inclusive)
        lines.append("  top leaf frames: wall, holding the GIL")
        lines.extend(f"    {wall:6.1%} {gil:6.1%}  {frame}" for frame, wall, gil in p.leaves)
    return "\n".join(lines)


def breakdown(profile: ThreadProfile) -> str:
    return ", ".join(f"{what} {share:.0%}" for what, share in profile.breakdown)

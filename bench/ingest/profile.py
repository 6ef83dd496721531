"""Where stemhook spends its time under load: py-spy profiles of its two processes.

A stemhook worker is two processes: the web process (HTTP, the endpoint) and its writer process
(parsing, storing, committing; app/ingest/writer_process.py). Two recordings of both
(`--subprocesses`) follow each other under the same load, at 100 Hz and aggregated by function
(`--function`):
- wall: idle samples included (`--idle`): the writer's time waiting for a commit's fsync is
  exactly what matters, and without `--idle` it would be dropped;
- GIL: only samples holding their process's GIL (`--gil`): Python running, not C code that let
  go of it (SQLite's own work, the fsync).

For each process's main thread the summary lists
- a breakdown: idle (web: a `Runner.run` leaf, no Python running, uvloop waiting for I/O or in
  its own C code; writer: waiting for submissions in `_Inbox._receive`), and for the web process
  the share inside the callback endpoint (`receive`) against the busy time around it (uvicorn's
  protocol, the middleware stack, routing, the answer);
- inclusive frames: stemhook's own functions (app/...) and the library functions they call
  directly, by the share of the thread's samples with the function on the stack, leaving out
  the trunk every sample shares;
- leaf frames: the innermost Python frame, with its share of wall samples and of GIL samples.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

PY_SPY = Path(sys.executable).parent / "py-spy"
WEB, WRITER = "web process", "writer process"
OWN = "app/"  # py-spy shortens paths to the package: stemhook's frames start with it
IDLE_LEAVES = ("Runner.run (asyncio/runners.py", "_Inbox._receive (app/ingest/writer_process.py")
ENDPOINT = "receive (app/api/callbacks.py"
WRITER_ENTRY = "serve (app/ingest/writer_process.py"
TRUNK = 0.995  # frames on (almost) every sample of a thread, such as `main`, say nothing
_PROCESSES = re.compile(r'(?:process \d+:".*?";(?=process |thread ))+')
_PID = re.compile(r'process (\d+):"')


@dataclass(frozen=True)
class ProcessProfile:
    process: str  # WEB or WRITER: its main thread
    samples: int
    cpu: float  # share of one core the process used while the wall samples were taken
    breakdown: list[tuple[str, float]]  # (what, share of the main thread's wall samples)
    inclusive: list[tuple[str, float]]
    leaves: list[tuple[str, float, float]]  # (frame, wall share, GIL-holding share)


@dataclass(frozen=True)
class Profile:
    processes: list[ProcessProfile]
    total_cpu: float  # share of one core, stemhook's processes together
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
    pids: dict[str, int]


def record(pid: int, *, seconds: int, output: Path, gil: bool) -> None:
    options = ["--gil"] if gil else ["--idle"]
    subprocess.run(
        [str(PY_SPY), "record", "--pid", str(pid), "--duration", str(seconds), "--subprocesses"]
        + ["--format", "raw", "--output", str(output), "--threads", "--function", *options],
        check=True,
        capture_output=True,
    )


def summarize(
    wall: Path, gil: Path, *, web_pid: int, cpu: dict[int, float], rate: float, top: int = 15
) -> Profile:
    """`cpu`: each process's share of one core during the wall recording, by pid."""
    walls, gils = _read(wall, web_pid), _read(gil, web_pid)
    profiles = []
    for process in (WEB, WRITER):
        total = walls.samples[process]
        if not total:
            continue
        idle = walls.idle[process] / total
        breakdown = [("idle", idle), ("busy", 1 - idle)]
        if process == WEB:
            endpoint = walls.endpoint[process] / total
            breakdown += [("in the endpoint", endpoint), ("around it", 1 - idle - endpoint)]
        breakdown.append(("holding the GIL", gils.samples[process] / total))
        branches = [(f, n / total) for f, n in walls.inclusive[process].most_common()]
        inclusive = [(frame, share) for frame, share in branches if share < TRUNK][:top]
        held = gils.leaves.get(process, Counter())
        leaves = [
            (frame, count / total, held[frame] / total)
            for frame, count in walls.leaves[process].most_common(top)
        ]
        used = cpu.get(walls.pids[process], 0.0)
        profiles.append(ProcessProfile(process, total, used, breakdown, inclusive, leaves))
    return Profile(profiles, sum(cpu.values()), rate)


def _read(raw: Path, web_pid: int) -> _Stacks:
    """py-spy's raw format, with --subprocesses and --threads:
    `process pid:"command";[process pid:"command";...]thread (tid): name;frame;... count`.
    Kept: the main thread of the web process and of the writer process (the one running
    writer_process.serve); not the forkserver, the watchdog or the thread pools."""
    stacks = _Stacks(Counter(), {}, {}, Counter(), Counter(), {})
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        # A command line may hold ";" (the forkserver's does): split after the last process.
        head = _PROCESSES.match(stack)
        pids = _PID.findall(head.group(0)) if head else []
        thread, _, rest = stack[head.end() if head else 0 :].partition(";")
        if not pids or not thread.endswith(": MainThread") or not rest:
            continue
        pid, frames = int(pids[-1]), rest.split(";")
        if pid == web_pid:
            process = WEB
        elif any(frame.startswith(WRITER_ENTRY) for frame in frames):
            process = WRITER
        else:
            continue
        count = int(count_text)
        stacks.pids[process] = pid
        stacks.samples[process] += count
        shown = {
            frame
            for caller, frame in zip([""] + frames, frames, strict=False)
            if _own(frame) or _own(caller)
        }
        stacks.inclusive.setdefault(process, Counter()).update(dict.fromkeys(shown, count))
        stacks.leaves.setdefault(process, Counter())[frames[-1]] += count
        if frames[-1].startswith(IDLE_LEAVES):
            stacks.idle[process] += count
        if any(frame.startswith(ENDPOINT) for frame in frames):
            stacks.endpoint[process] += count
    return stacks


def _own(frame: str) -> bool:
    return frame.partition(" (")[2].startswith(OWN)


def render(profile: Profile) -> str:
    """Plain text for the terminal."""
    lines = [
        f"stemhook: {profile.total_cpu:.0%} of a core at {profile.rate:,.0f} req/s,"
        f" {profile.cpu_us_per_request(profile.total_cpu):.0f} µs of CPU per request"
    ]
    for p in profile.processes:
        lines.append(f"{p.process} ({p.samples} samples): " + breakdown(p))
        per_request = profile.cpu_us_per_request(p.cpu)
        lines.append(f"  on CPU {p.cpu:.0%} of a core, {per_request:.0f} µs per request")
        lines.append("  top inclusive frames (stemhook's own, and what they call)")
        lines.extend(f"    {share:6.1%}  {frame}" for frame, share in p.inclusive)
        lines.append("  top leaf frames: wall, holding the GIL")
        lines.extend(f"    {wall:6.1%} {gil:6.1%}  {frame}" for frame, wall, gil in p.leaves)
    return "\n".join(lines)


def breakdown(profile: ProcessProfile) -> str:
    return ", ".join(f"{what} {share:.0%}" for what, share in profile.breakdown)

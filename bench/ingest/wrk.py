"""Running wrk and reading the one JSON line its script's `done()` prints.

A run with any error is a failed benchmark, not a figure: a non-2xx answer, a socket error or
a request past wrk's timeout raises LoadFailed with wrk's own output.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.ingest.lua import RESULT_MARK

WRK = shutil.which("wrk") or "/usr/bin/wrk"
# A request this slow is an error: far beyond any latency worth reporting, and it means the
# server stalled.
TIMEOUT_S = 10


class LoadFailed(Exception):
    pass


@dataclass(frozen=True)
class Paced:
    """Latency counted from when each request was due (see lua.py)."""

    answers: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float


@dataclass(frozen=True)
class Load:
    """The figures of one wrk run; latency from when each request left."""

    requests: int
    duration_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    paced: Paced | None = None

    @property
    def rate(self) -> float:
        return self.requests / self.duration_s


@dataclass(frozen=True)
class Invocation:
    url: str
    script: Path
    duration_s: float
    connections: int
    threads: int
    args: tuple[str, ...]
    # At SCHED_IDLE wrk runs only on CPU time no server process wants (bench/ingest/cli.py).
    idle: bool = False

    def argv(self) -> list[str]:
        priority = ["chrt", "--idle", "0"] if self.idle else []
        return [
            *priority,
            WRK,
            f"-t{self.threads}",
            f"-c{self.connections}",
            f"-d{self.duration_s:g}s",
            f"--timeout={TIMEOUT_S}s",
            "-s",
            str(self.script),
            self.url,
            "--",
            *self.args,
        ]


def saturating(
    base_url: str, path: str, script: Path, *, duration_s: float, connections: int, idle: bool
) -> Invocation:
    # One wrk thread: it keeps far ahead of these servers and leaves the second core to them.
    args = (run_prefix(), path)
    return Invocation(base_url, script, duration_s, connections, 1, args, idle)


def paced(
    base_url: str, path: str, script: Path, *, duration_s: float, connections: int, rate: float
) -> Invocation:
    per_connection = f"{rate / connections:.3f}"
    args = (run_prefix(), path, per_connection, str(connections))
    # One connection per thread: each thread's answers then belong to its own last request. At
    # half the rate the threads sleep between requests; the second core stays the servers'.
    # Always at normal priority: a sender kept waiting for CPU sends late, and its lateness would
    # be counted as the server's latency.
    return Invocation(base_url, script, duration_s, connections, connections, args)


def run_prefix() -> str:
    """Unique per wrk run, so that no job id repeats across runs, rounds or reruns."""
    return secrets.token_hex(4)


def run(invocation: Invocation) -> Load:
    completed = subprocess.run(
        invocation.argv(),
        capture_output=True,
        text=True,
        timeout=invocation.duration_s + TIMEOUT_S + 30,
        check=False,
    )
    output = completed.stdout + completed.stderr
    lines = [line for line in completed.stdout.splitlines() if line.startswith(RESULT_MARK)]
    if completed.returncode != 0 or len(lines) != 1:
        raise LoadFailed(
            f"wrk failed ({completed.returncode}): {' '.join(invocation.argv())}\n{output}"
        )
    return _load(json.loads(lines[0].removeprefix(RESULT_MARK)), invocation, output)


def _load(result: dict[str, Any], invocation: Invocation, output: str) -> Load:
    errors = {
        key: result[key]
        for key in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")
        if result[key]
    }
    paced_result = result.get("paced")
    if paced_result and paced_result["not_2xx"]:
        errors["not_2xx"] = paced_result["not_2xx"]
    if errors or not result["requests"]:
        raise LoadFailed(
            f"{invocation.url}{invocation.args[1]}: {errors or 'no requests completed'} "
            f"(status_errors are answers other than 2xx/3xx)\n{' '.join(invocation.argv())}\n"
            f"{output}"
        )
    paced_load = None
    if paced_result:
        paced_load = Paced(
            answers=paced_result["answers"],
            p50_ms=paced_result["p50_us"] / 1000,
            p90_ms=paced_result["p90_us"] / 1000,
            p99_ms=paced_result["p99_us"] / 1000,
            max_ms=paced_result["max_us"] / 1000,
        )
    return Load(
        requests=result["requests"],
        duration_s=result["duration_us"] / 1e6,
        p50_ms=result["p50_us"] / 1000,
        p90_ms=result["p90_us"] / 1000,
        p99_ms=result["p99_us"] / 1000,
        max_ms=result["max_us"] / 1000,
        paced=paced_load,
    )

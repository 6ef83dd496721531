"""The benchmarks' stand-in servers (bench/loopback.py) started as processes of their own, and
the CPU time they use: what a figure beside them must leave out."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from bench.ingest.processes import group_cpu_s


@dataclass(frozen=True)
class StandIn:
    """A stand-in server's process, and the port it serves on."""

    process: subprocess.Popen[str]
    port: int

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu_s(self) -> float:
        """The CPU seconds it used so far (it is its process group alone)."""
        return sum(group_cpu_s(self.process.pid).values())


@contextmanager
def started(module: str, *args: str) -> Iterator[StandIn]:
    """`python -m module args`, a server that prints its port first, until the block ends; in
    a session of its own, so that its process group is itself alone."""
    command = [sys.executable, "-m", module, *args]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, start_new_session=True) as p:
        try:
            assert p.stdout is not None
            yield StandIn(p, int(p.stdout.readline()))
        finally:
            p.kill()

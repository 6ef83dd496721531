"""CPU time used so far by processes, read from /proc (Linux): a server's process group, or a
PostgreSQL server's processes.

A process that ended between two readings is missing from the second: what it used is lost,
so a delta over a run counts only the processes alive at its end.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.ingest.databases import Scratch

POSTGRES = "postgres"  # the command name of every PostgreSQL server process: backends too


@dataclass(frozen=True)
class Process:
    pid: int
    name: str  # the command name, as /proc/<pid>/comm has it
    parent: int
    group: int
    cpu_s: float  # utime + stime so far


def processes() -> Iterator[Process]:
    ticks = os.sysconf("SC_CLK_TCK")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:  # a process that ended meanwhile
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses itself.
        head, _, tail = stat.rpartition(")")
        fields = tail.split()
        used = (int(fields[11]) + int(fields[12])) / ticks
        yield Process(int(pid), head.partition("(")[2], int(fields[1]), int(fields[2]), used)


def group_cpu_s(group: int) -> dict[int, float]:
    """CPU seconds of each process of a process group, by pid."""
    return {p.pid: p.cpu_s for p in processes() if p.group == group}


def server_cpu_s(postmaster: int) -> dict[int, float]:
    """CPU seconds of a PostgreSQL server's processes, by pid: its postmaster and every process
    the postmaster started (each backend, the WAL writer, the checkpointer ...)."""
    return {p.pid: p.cpu_s for p in processes() if postmaster in (p.pid, p.parent)}


def postmaster(pids: frozenset[int]) -> int | None:
    """The parent of the PostgreSQL processes among `pids` (those a server lists itself), or None
    where none of them runs on this machine. Another server on the machine has its own."""
    parents = Counter(p.parent for p in processes() if p.pid in pids and p.name == POSTGRES)
    return parents.most_common(1)[0][0] if parents else None


class PostgresCpu:
    """The CPU seconds the scratch database's PostgreSQL server spends from now until spent(),
    split into its backends of other databases (other work on a shared server) and the rest: the
    scratch database's backends and the server's own processes (WAL writer, checkpointer ...),
    which serve every database alike."""

    def __init__(self, scratch: Scratch) -> None:
        self.scratch = scratch
        self.backends = scratch.backends()
        self.postmaster = postmaster(self.backends.pids)
        self.before = {} if self.postmaster is None else server_cpu_s(self.postmaster)

    def spent(self) -> tuple[float, float] | None:
        """(the rest, other databases' backends); None if the server is not on this machine."""
        if self.postmaster is None:
            return None
        after = server_cpu_s(self.postmaster)
        # Those known at the start or at the end: a backend may have started meanwhile.
        elsewhere_pids = self.backends.elsewhere | self.scratch.backends().elsewhere
        spent = {pid: used - self.before.get(pid, 0.0) for pid, used in after.items()}
        elsewhere = sum(spent[pid] for pid in elsewhere_pids if pid in spent)
        return sum(spent.values()) - elsewhere, elsewhere

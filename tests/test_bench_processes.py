"""bench/ingest/processes.py reads each process's name, parent, group and CPU time from /proc."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.ingest.processes import group_cpu_s, processes, server_cpu_s

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc"),
    pytest.mark.servers,
]
COMM = Path("/proc/self/comm")


@pytest.fixture
def renamed() -> Iterator[str]:
    """This process under a command name with a space and parentheses, as /proc allows."""
    name = COMM.read_text().rstrip("\n")
    COMM.write_text("a) b (c")
    try:
        yield "a) b (c"
    finally:
        COMM.write_text(name)


def test_a_process_is_found_by_its_command_name(renamed: str) -> None:
    assert [p.pid for p in processes() if p.name == renamed] == [os.getpid()]


def test_a_process_group_holds_this_process() -> None:
    assert os.getpid() in group_cpu_s(os.getpgrp())


def test_a_server_is_its_process_and_the_processes_it_started() -> None:
    with subprocess.Popen(["cat"], stdin=subprocess.PIPE) as child:
        try:
            assert {os.getpid(), child.pid} <= server_cpu_s(os.getpid()).keys()
            assert os.getppid() not in server_cpu_s(os.getpid())
        finally:
            assert child.stdin is not None
            child.stdin.close()

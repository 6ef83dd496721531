"""Real `stemhook serve` processes for tests that need several of them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

# Far above a start on a quiet machine (~2 s): one starved by other processes has taken 30 s.
STARTUP_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


@contextmanager
def running_server(env: dict[str, str], workdir: Path, *, workers: int = 1) -> Iterator[str]:
    """A server on a free port, in its own directory (so no .env is picked up); yields its URL."""
    with server_process(env, workdir, workers=workers) as server:
        yield server.url


@contextmanager
def server_process(env: dict[str, str], workdir: Path, *, workers: int = 1) -> Iterator[Server]:
    """As running_server, yielding the process too (to measure or kill it); one that is already
    dead is only reaped, one that ignores SIGTERM for 15 s is killed."""
    port = free_port()
    command = [sys.executable, "-m", "app", "serve", "--port", str(port), "--workers", str(workers)]
    log_path = workdir / f"server-{port}.log"
    log = log_path.open("wb")
    # A session of its own: a crash test kills its process group, the writer processes with it.
    process = subprocess.Popen(
        command,
        cwd=workdir,
        env=os.environ | env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, process, log_path)
        yield Server(url, process, log_path)
    finally:
        if process.poll() is None:
            process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"server did not come up within {STARTUP_TIMEOUT_S} s:\n{log.read_text()}")

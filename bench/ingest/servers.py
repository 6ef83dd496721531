"""Starting and stopping the servers under load: stemhook itself and the reference app.

Both run as their own processes through uvicorn.run with the same options (`stemhook serve`
and bench/ingest/reference.py), on a free loopback port, from a scratch directory: a `.env`
in the checkout cannot change what is measured, and no STEMHOOK_* variable of the caller's
leaks in. A server counts as up once every worker has logged its start-up and /healthz
answers.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STARTED = "Application startup complete."
START_TIMEOUT_S = 90
STOP_TIMEOUT_S = 20
SLOW_COMMIT_LOGGER = "app.ingest.committer"
_BACKGROUND_STARTED = re.compile(rb"background process (\d+) started")


class ServerFailed(Exception):
    pass


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_size(self) -> int:
        return self.log.stat().st_size

    def background_pid(self) -> int:
        """The background process (mirror, poller) the server started last (app/background.py
        logs its pid)."""
        started = _BACKGROUND_STARTED.findall(self.log.read_bytes())
        if not started:
            raise ServerFailed(f"{self.name} logged no background process: has it work?")
        return int(started[-1])

    def slow_commits_ms(self, since: int) -> tuple[float, ...]:
        """The durations of the commits stemhook logged as slow (app/ingest/committer.py)
        after `since` bytes of its log. The server is still writing: a last line without its
        newline is left for later, and a line that is not a committer's JSON is skipped."""
        durations = []
        with self.log.open("rb") as log:
            log.seek(since)
            for line in log:
                if not line.endswith(b"\n") or b'"commit_ms"' not in line:
                    continue
                with suppress(ValueError):
                    record = json.loads(line)
                    if record.get("logger") == SLOW_COMMIT_LOGGER:
                        durations.append(float(record["commit_ms"]))
        return tuple(durations)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def stemhook_command(port: int, workers: int) -> list[str]:
    return [sys.executable, "-m", "app", "serve", "--port", str(port), "--workers", str(workers)]


def reference_command(port: int, workers: int) -> list[str]:
    module = "bench.ingest.reference"
    return [sys.executable, "-m", module, "--port", str(port), "--workers", str(workers)]


@contextmanager
def serving(
    name: str, command: list[str], *, port: int, workers: int, workdir: Path, env: dict[str, str]
) -> Iterator[Server]:
    log = workdir / f"{name}.log"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("STEMHOOK_")}
    environment |= env | {"PYTHONPATH": str(REPO)}
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            cwd=workdir,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: its workers stop with it
        )
    server = Server(name, port, process, log)
    try:
        _wait_until_up(server, workers)
        yield server
    finally:
        _stop(server)


def _wait_until_up(server: Server, workers: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise ServerFailed(
                f"{server.name} exited ({server.process.returncode}):\n{_tail(server)}"
            )
        if server.log.read_text(errors="replace").count(STARTED) >= workers and _healthy(server):
            return
        time.sleep(0.2)
    raise ServerFailed(f"{server.name} did not start in {START_TIMEOUT_S} s:\n{_tail(server)}")


def _healthy(server: Server) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=2)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def _stop(server: Server) -> None:
    """SIGTERM, as a supervisor would: uvicorn finishes in-flight requests and the writer
    commits what it holds. Only if that hangs is the server's own process group killed (the
    stored-deliveries check that follows then tells whether anything acknowledged was lost)."""
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait()
            print(f"  ! {server.name} did not stop in {STOP_TIMEOUT_S} s: killed", flush=True)


def _tail(server: Server, lines: int = 30) -> str:
    return "\n".join(server.log.read_text(errors="replace").splitlines()[-lines:])

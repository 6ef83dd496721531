"""deploy/nginx.conf in a real nginx (Debian's), filled in the way the official image does it.

In the container the image's own nginx.conf stands around the file; here a minimal one does,
with the pid file and temporary paths in a test directory: those, the listen port and the
upstream address are all that differ.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.servers import free_port

NGINX_CONF = Path(__file__).resolve().parents[2] / "deploy" / "nginx.conf"
PLACEHOLDER = re.compile(r"\$\{(\w+)\}")
# Generous: nginx starts in milliseconds, but a starved machine delays any process by seconds.
STARTUP_TIMEOUT_S = 60
STOP_TIMEOUT_S = 60

_MAIN = """\
worker_processes 1;
pid {run}/nginx.pid;
events {{
    worker_connections 256;
}}
http {{
    default_type application/octet-stream;
    client_body_temp_path {run}/body;
    proxy_temp_path {run}/proxy;
    fastcgi_temp_path {run}/fastcgi;
    uwsgi_temp_path {run}/uwsgi;
    scgi_temp_path {run}/scgi;
    include {run}/stemhook.conf;
}}
"""


def placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text))


def render(values: dict[str, str]) -> str:
    """As envsubst with the defined variables: those are replaced, anything else stays."""
    return PLACEHOLDER.sub(lambda found: values.get(found[1], found[0]), NGINX_CONF.read_text())


def directive(name: str) -> str:
    """The value of a directive that deploy/nginx.conf sets once."""
    values = re.findall(rf"^\s*{name}\s+([^;]+);", NGINX_CONF.read_text(), re.MULTILINE)
    assert len(values) == 1, f"{name} is set {len(values)} times"
    return str(values[0])


def nginx_binary() -> str:
    """Debian's nginx (`make test` installs it); missing, the test skips, or fails in CI."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    if found is None:
        message = "nginx is not installed (apt-get install nginx)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


def write_config(run: Path, values: dict[str, str]) -> Path:
    run.mkdir(parents=True, exist_ok=True)
    (run / "stemhook.conf").write_text(render(values))
    main = run / "nginx.conf"
    main.write_text(_MAIN.format(run=run))
    return main


def check_config(run: Path, values: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`nginx -t` on the file filled in with these values."""
    main = write_config(run, values)
    command = [nginx_binary(), "-t", "-q", *_paths(run, main)]
    return subprocess.run(command, capture_output=True, text=True, timeout=STARTUP_TIMEOUT_S)


@contextmanager
def running_nginx(run: Path, *, upstream: str, root_path: str) -> Iterator[str]:
    """nginx on a free port proxying to `upstream` (host:port); yields its URL."""
    port = free_port()
    values = {
        "NGINX_PORT": str(port),
        "STEMHOOK_UPSTREAM": upstream,
        "STEMHOOK_ROOT_PATH": root_path,
    }
    main = write_config(run, values)
    log = (run / "nginx.out").open("wb")
    process = subprocess.Popen(
        [nginx_binary(), *_paths(run, main), "-g", "daemon off;"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_until_listening(port, process, run)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _paths(run: Path, main: Path) -> list[str]:
    return ["-p", str(run), "-c", str(main), "-e", str(run / "error.log")]


def _wait_until_listening(port: int, process: subprocess.Popen[bytes], run: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"nginx exited with {process.returncode}:\n{_logs(run)}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nginx did not listen within {STARTUP_TIMEOUT_S} s:\n{_logs(run)}")


def _logs(run: Path) -> str:
    return "\n".join(p.read_text() for p in (run / "nginx.out", run / "error.log") if p.exists())

"""deploy/nginx.conf in front of a real stemhook: what it forwards, what it refuses, how fast.

The proxy alone bounds the size and the duration of a request head (stemhook, that is uvicorn,
takes one of any size for as long as it trickles in): behind it, an oversized or trickled head
never reaches stemhook.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from app.config import Settings
from tests.deploy.conftest import AUTH, CALLBACK_TOKEN, CLIENT_ADDR, ROOT_PATH
from tests.deploy.dns import docker_dns
from tests.deploy.nginx import directive, running_nginx
from tests.reliability.rawhttp import stream
from tests.reliability.support import figures, media_lab_json

pytestmark = pytest.mark.servers

SPOOFED = {"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "https"}
MIB = 1024 * 1024
HEAD_START = f"POST {ROOT_PATH}/callbacks HTTP/1.1\r\nHost: stemhook\r\n".encode()
# What a refusal may let through first: the sockets' buffers take a few MiB before it reaches
# the sender, against the 32 MiB offered.
HEADER_BOUND_BYTES = 8 * MIB
# How early nginx's clock may start before the client's, and how late a loaded machine may run
# its timer: generous, since only a cut by nginx rather than the client's own timeout matters.
EARLY_S = 2
LATE_S = 20
OTHER_REPLICA = "127.0.0.5"


def _seconds(value: str) -> float:
    assert value.endswith("s"), value
    return float(value[:-1])


def _bytes(value: str) -> int:
    units = {"k": 1024, "m": MIB}
    return int(value[:-1]) * units[value[-1]] if value[-1] in units else int(value)


def post_callback(sender: httpx.Client, url: str, job_id: str) -> httpx.Response:
    return sender.post(
        f"{url}/callbacks/tencent-media-lab",
        params={"token": CALLBACK_TOKEN},
        content=media_lab_json(job_id, 3),
        headers=SPOOFED | {"Host": "hooks.example.com"},
    )


def stored_delivery(proxy: str, answer: httpx.Response) -> dict[str, Any]:
    assert answer.status_code == 200, answer.text
    delivery_id = answer.json()["delivery_id"]
    found = httpx.get(f"{proxy}/v1/deliveries/{delivery_id}", headers=AUTH)
    assert found.status_code == 200, found.text
    stored: dict[str, Any] = found.json()
    return stored


def test_a_callback_is_recorded_with_the_address_nginx_saw_not_the_one_claimed(
    proxy: str, sender: httpx.Client
) -> None:
    delivery = stored_delivery(proxy, post_callback(sender, proxy, "via-proxy"))

    # nginx connects from 127.0.0.1, which stemhook trusts; the client's own claims are replaced.
    assert delivery["client_addr"] == CLIENT_ADDR
    forwarded = {
        name: delivery["headers"][name] for name in ("x-forwarded-for", "x-forwarded-proto")
    }
    assert forwarded == {"x-forwarded-for": CLIENT_ADDR, "x-forwarded-proto": "http"}
    assert delivery["headers"]["host"] == "hooks.example.com"


def test_the_access_log_keeps_the_path_but_not_the_token(
    proxy: str, proxy_log: Path, sender: httpx.Client
) -> None:
    line = f'"POST {ROOT_PATH}/callbacks/tencent-media-lab HTTP/1.1" 200'
    before = len(lines_with(proxy_log, line))
    assert post_callback(sender, proxy, "logged").status_code == 200

    logged = new_lines_with(proxy_log, line, after=before)
    assert logged[-1].startswith(f"{CLIENT_ADDR} ")
    assert all(CALLBACK_TOKEN not in line for line in proxy_log.read_text().splitlines())


def lines_with(log: Path, text: str) -> list[str]:
    return [line for line in log.read_text().splitlines() if text in line]


def new_lines_with(log: Path, text: str, *, after: int, within_s: float = 60) -> list[str]:
    """The lines containing the text past the first `after`, once there is one: nginx logs a
    request just after it has answered it (milliseconds, or seconds on a starved machine), and
    other tests' requests share the log."""
    deadline = time.monotonic() + within_s
    while not (found := lines_with(log, text)[after:]):
        assert time.monotonic() < deadline, f"no new {text!r} in {log}"
        time.sleep(0.05)
    return found


def test_a_client_bypassing_the_proxy_cannot_claim_an_address(
    stemhook: str, proxy: str, sender: httpx.Client
) -> None:
    """The same stemhook, reached directly from an address not in STEMHOOK_FORWARDED_ALLOW_IPS."""
    delivery = stored_delivery(proxy, post_callback(sender, stemhook, "bypassing"))

    assert delivery["client_addr"] == CLIENT_ADDR
    assert delivery["headers"]["x-forwarded-for"] == "6.6.6.6"  # kept as sent, not believed


@pytest.mark.parametrize(
    ("size", "refused_by_stemhook"), [(MIB + 1, True), (2 * MIB, False)], ids=["1MiB+1", "2MiB"]
)
def test_a_body_over_the_limit_is_refused(proxy: str, size: int, refused_by_stemhook: bool) -> None:
    """Just over STEMHOOK_MAX_BODY_BYTES stemhook answers itself; far over, nginx does."""
    body = b"{" + b" " * (size - 2) + b"}"
    answer = httpx.post(f"{proxy}/callbacks", params={"token": CALLBACK_TOKEN}, content=body)

    assert answer.status_code == 413
    from_stemhook = answer.headers["content-type"] == "application/json"
    assert from_stemhook == refused_by_stemhook
    if from_stemhook:
        assert answer.json()["error"]["code"] == "payload_too_large"


@pytest.mark.anyio
async def test_an_endless_header_is_refused_before_it_is_buffered(proxy: str) -> None:
    padding = itertools.repeat(b"a" * 65536, 32 * MIB // 65536)
    streamed = await stream(
        proxy, HEAD_START + b"X-Padding: ", padding, end=b"\r\nContent-Length: 2\r\n\r\n{}"
    )
    figures(
        "endless header via nginx", header_bytes_sent=streamed.bytes_sent, answer=streamed.status
    )

    assert streamed.status == 400
    assert streamed.bytes_sent < HEADER_BOUND_BYTES


@pytest.mark.parametrize(("over", "status"), [(-1, 401), (1, 400)], ids=["at", "over"])
def test_a_header_line_over_the_limit_is_refused_by_nginx(
    proxy: str, over: int, status: int
) -> None:
    """A line up to large_client_header_buffers' size reaches stemhook (which refuses the missing
    callback token); one byte more is refused by nginx."""
    line_limit = _bytes(directive("large_client_header_buffers").split()[1])
    value = "a" * (line_limit + over - len("X-Padding: \r\n"))
    answer = httpx.post(f"{proxy}/callbacks", content=b"{}", headers={"X-Padding": value})

    assert answer.status_code == status
    from_stemhook = answer.headers["content-type"] == "application/json"
    assert from_stemhook == (status == 401)


@pytest.mark.anyio
async def test_a_trickled_header_section_is_cut_off(proxy: str) -> None:
    limit_s = _seconds(directive("client_header_timeout"))
    lines = (b"X-Slow-%d: 1\r\n" % n for n in itertools.count())

    streamed = await stream(proxy, HEAD_START, lines, pause_s=0.25, timeout_s=limit_s + LATE_S)
    figures(
        "trickled header via nginx", cut_after_s=f"{streamed.elapsed_s:.1f}", answer=streamed.status
    )

    assert streamed.status in (None, 408)
    assert streamed.elapsed_s > limit_s - EARLY_S


def test_the_docs_work_under_the_prefix(proxy: str) -> None:
    docs = httpx.get(f"{proxy}/docs")
    spec = httpx.get(f"{proxy}/openapi.json")
    outside = httpx.get(proxy.removesuffix(ROOT_PATH) + "/docs")

    assert docs.status_code == 200
    assert re.search(rf"url: *'{ROOT_PATH}/openapi.json'", docs.text)
    assert spec.status_code == 200
    assert spec.json()["servers"] == [{"url": ROOT_PATH}]
    assert outside.status_code == 404


def test_health_and_readiness_through_the_proxy(proxy: str) -> None:
    health = httpx.get(f"{proxy}/healthz")
    ready = httpx.get(f"{proxy}/readyz")

    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert (ready.status_code, ready.json()["status"]) == (200, "ready")


def test_metrics_are_served_to_the_scraper_only(stemhook: str, proxy: str) -> None:
    assert httpx.get(f"{stemhook}/metrics").status_code == 200
    assert httpx.get(f"{proxy}/metrics").status_code == 404


def test_the_limits_fit_the_service() -> None:
    """Static, against stemhook's defaults: the body limit a little above its own, the read
    timeout above its longest long poll."""
    defaults = Settings.model_fields
    max_body = defaults["max_body_bytes"].default
    body_limit = _bytes(directive("client_max_body_size"))

    assert max_body < body_limit <= max_body * 1.25
    assert _seconds(directive("proxy_read_timeout")) > defaults["max_wait_s"].default


def test_replicas_are_found_by_name_and_all_get_requests(
    nginx: str, stemhook: str, tmp_path: Path
) -> None:
    """As in compose: the upstream is a service name, asked of Docker's DNS at request time, and
    every address it has is used. The second replica is a stand-in on another loopback address."""
    port = urlsplit(stemhook).port
    assert port is not None
    records = {"stemhook": ["127.0.0.1", OTHER_REPLICA]}
    with (
        other_replica(port),
        docker_dns(records) as asked,
        running_nginx(tmp_path, upstream=f"stemhook:{port}", root_path=ROOT_PATH) as url,
    ):
        answers = replicas_answering(f"{url}{ROOT_PATH}/healthz", expected=2)

    assert "stemhook" in asked
    assert {"status": "ok"} in answers
    assert {"status": "ok", "replica": OTHER_REPLICA} in answers


def replicas_answering(url: str, *, expected: int, tries: int = 40) -> list[dict[str, str]]:
    """The distinct answers of up to `tries` requests, stopping once `expected` differ. nginx
    rotates the resolved addresses from a random start for each request, so a few requests can
    all land on one replica; 40 miss one of two with a chance of 2**-39."""
    answers: list[dict[str, str]] = []
    for _ in range(tries):
        answer = httpx.get(url).json()
        if answer not in answers:
            answers.append(answer)
        if len(answers) == expected:
            break
    return answers


@contextmanager
def other_replica(port: int) -> Iterator[None]:
    """Answers GET /healthz on OTHER_REPLICA, saying which it is."""

    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"status": "ok", "replica": "%s"}' % OTHER_REPLICA.encode()
            self.send_response(200 if self.path == "/healthz" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((OTHER_REPLICA, port), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join()

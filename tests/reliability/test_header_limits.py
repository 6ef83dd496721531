"""The request head, before the app sees anything: its size and the time it may take.

The body is bounded by the app (STEMHOOK_MAX_BODY_BYTES, STEMHOOK_BODY_TIMEOUT_S); the header
section is read by uvicorn before the app runs, so the HTTP protocol `stemhook serve` runs
bounds it (app/http_protocol.py).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from tests.reliability.rawhttp import stream
from tests.reliability.support import figures, memory_kib, server_env
from tests.servers import server_process

pytestmark = pytest.mark.anyio

BODY_TIMEOUT_S = 1
GRACE_S = 5
SENT_HEADER_BYTES = 32 * 1024 * 1024
# Far above any server's limit (h11 stops at 16 KiB, nginx at 8 KiB a line), since the sockets'
# buffers take a few MiB before a refusal can reach the sender (measured with h11: 1.3 MiB).
HEADER_BOUND_BYTES = 8 * 1024 * 1024
HEAD_START = b"POST /callbacks HTTP/1.1\r\nHost: stemhook\r\n"


async def test_an_endless_header_is_refused_before_it_is_buffered(tmp_path: Path) -> None:
    padding = itertools.repeat(b"a" * 65536, SENT_HEADER_BYTES // 65536)
    with server_process(server_env(f"sqlite:///{tmp_path / 'head.db'}"), tmp_path) as server:
        before = memory_kib(server.process.pid)
        streamed = await stream(
            server.url,
            HEAD_START + b"X-Padding: ",
            padding,
            end=b"\r\nContent-Length: 2\r\n\r\n{}",
        )
        after = memory_kib(server.process.pid)
    figures(
        "endless header",
        header_bytes_sent=streamed.bytes_sent,
        answer=streamed.status,
        peak_memory_growth_mib=(after["VmHWM"] - before["VmRSS"]) >> 10,
    )
    assert streamed.bytes_sent < HEADER_BOUND_BYTES
    assert streamed.status == 431


async def test_a_trickled_header_section_is_cut_off(tmp_path: Path) -> None:
    env = server_env(f"sqlite:///{tmp_path / 'head.db'}", body_timeout_s=BODY_TIMEOUT_S)
    lines = (b"X-Slow-%d: 1\r\n" % n for n in itertools.count())
    with server_process(env, tmp_path) as server:
        try:
            streamed = await stream(
                server.url, HEAD_START, lines, pause_s=0.25, timeout_s=BODY_TIMEOUT_S + GRACE_S
            )
            cut_after_s: float | None = streamed.elapsed_s
            answered = streamed.status
        except TimeoutError:
            cut_after_s, answered = None, None
    figures(
        "trickled header section",
        cut_after_s=cut_after_s or f"not within {BODY_TIMEOUT_S + GRACE_S} s",
    )
    assert cut_after_s is not None
    assert answered == 408

"""A slow drip is cut off by the deadline for the whole fetch, not only between reads."""

from __future__ import annotations

import threading
from ipaddress import ip_network

import pytest

from app.fetching.errors import Retryable
from app.fetching.fetcher import Fetcher
from tests.fetching.servers import FileServer, Handler
from tests.fetching.test_fetcher import loopback_only  # noqa: F401 - autouse fixture

READ_TIMEOUT_S = 0.2
DRIPS = 20
PACE_S = 0.1  # half the read timeout: every read is "in time"
# A quarter of the drip's least duration (DRIPS * PACE_S): a loaded machine only slows the drip.
DEADLINE_S = 0.5


def _drip(handler: Handler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Length", str(DRIPS))
    handler.end_headers()
    paced = threading.Event()
    for _ in range(DRIPS):
        handler.wfile.write(b"x")
        handler.wfile.flush()
        paced.wait(PACE_S)  # pacing the drip, not synchronising with the test


def test_a_slow_drip_is_cut_off_by_a_deadline_for_the_whole_fetch() -> None:
    """A source sending one byte just inside every read timeout is never cut off: with the
    defaults (60 s between reads, 2 GiB cap) one fetch can hold a mirror thread (and, through
    lease renewals, its task) for decades; STEMHOOK_FETCH_CONCURRENCY such URLs stop all
    mirroring. Here 20 bytes take ten read timeouts, and the deadline for the whole fetch
    (STEMHOOK_FETCH_TIMEOUT_S) cuts them off."""
    server = FileServer("127.0.0.1", {"/drip": _drip}, None)
    fetcher = Fetcher(
        admitted=[ip_network("127.0.0.1/32")],
        max_bytes=1_000_000,
        connect_timeout_s=5,
        read_timeout_s=READ_TIMEOUT_S,
        total_timeout_s=DEADLINE_S,
    )
    try:
        url = f"http://127.0.0.1:{server.port}/drip"
        with (
            pytest.raises(Retryable, match=r"^the whole fetch took longer than 0\.5 s$"),
            fetcher.open(url) as download,
        ):
            b"".join(download.chunks())
    finally:
        fetcher.close()
        server.stop()

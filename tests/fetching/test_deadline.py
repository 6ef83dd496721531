"""A whole fetch has a deadline (STEMHOOK_FETCH_TIMEOUT_S), counted from `Fetcher.open` across
connecting, redirects, headers and body; and a host's addresses are tried only up to a few.

Time is a test clock that the test (or a route serving the fetch) moves, except where a server
never answers: there the deadline is far shorter than the read timeout, so it is always first.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from ipaddress import ip_network
from typing import Any

import pytest

from app.fetching.connect import ADDRESSES_TRIED
from app.fetching.errors import Refused, Retryable
from app.fetching.fetcher import Fetcher
from tests.fetching.servers import FileServer, Handler, Listener
from tests.fetching.test_fetcher import (  # noqa: F401 - fixtures
    PAYLOAD,
    ROUTES,
    fetch,
    fetcher_with,
    listen,
    loopback_only,
    table_resolver,
)

TOTAL_S = 30.0
_DEADLINE_PASSED = r"^the whole fetch took longer than 30 s$"


class TestClock:
    """A monotonic clock that moves only when told to, from any thread."""

    __test__ = False

    def __init__(self) -> None:
        self._now = 1000.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


@pytest.fixture
def clock() -> TestClock:
    return TestClock()


@pytest.fixture
def server(clock: TestClock) -> Iterator[FileServer]:
    def slow_hop(handler: Handler) -> None:
        """A redirect that took 20 s of the test clock to answer."""
        clock.advance(20)
        hops = int(handler.query("n"))
        location = "/file" if hops == 1 else f"/slow-hop?n={hops - 1}"
        handler.answer(302, b"", {"Location": location})

    server = FileServer("127.0.0.1", ROUTES | {"/slow-hop": slow_hop}, None)
    yield server
    server.stop()


@pytest.fixture
def fetcher(fetcher_with: Callable[..., Fetcher], clock: TestClock) -> Fetcher:  # noqa: F811
    return fetcher_with(total_timeout_s=TOTAL_S, clock=clock)


def test_a_fetch_within_its_deadline_is_whole(fetcher: Fetcher, server: FileServer) -> None:
    """The control for the tests below: the same fetch, the clock standing still."""
    assert fetch(fetcher, f"http://127.0.0.1:{server.port}/file") == PAYLOAD


def test_the_deadline_counts_from_open_not_from_the_first_chunk(
    fetcher: Fetcher, server: FileServer, clock: TestClock
) -> None:
    with fetcher.open(f"http://127.0.0.1:{server.port}/file") as download:
        clock.advance(TOTAL_S)
        with pytest.raises(Retryable, match=_DEADLINE_PASSED):
            next(download.chunks())


def test_the_deadline_counts_every_redirect_hop(
    fetcher: Fetcher, server: FileServer, clock: TestClock
) -> None:
    """One slow hop fits in the deadline; the second (40 s in all) passes it before the file."""
    assert fetch(fetcher, f"http://127.0.0.1:{server.port}/slow-hop?n=1") == PAYLOAD

    with pytest.raises(Retryable, match=_DEADLINE_PASSED):
        fetch(fetcher, f"http://127.0.0.1:{server.port}/slow-hop?n=2")

    assert [path for path, _ in server.requests][-2:] == ["/slow-hop", "/slow-hop"]


def test_a_server_that_never_answers_is_cut_off_by_the_deadline_before_the_read_timeout(
    fetcher_with: Callable[..., Fetcher],  # noqa: F811
    server: FileServer,
) -> None:
    """The headers' reads wait only what remains of the deadline, not the read timeout each."""
    fetcher = fetcher_with(read_timeout_s=60, total_timeout_s=0.2)

    with pytest.raises(Retryable, match=r"^the whole fetch took longer than 0\.2 s$"):
        fetch(fetcher, f"http://127.0.0.1:{server.port}/never")


def _attempts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The addresses connections are attempted to, from now on."""
    attempted: list[str] = []
    create_connection = socket.create_connection

    def recorded(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        attempted.append(address[0])
        return create_connection(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", recorded)
    return attempted


def test_only_the_first_addresses_of_a_host_are_tried(
    fetcher_with: Callable[..., Fetcher],  # noqa: F811
    listen: Callable[[str], Listener],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Six addresses refusing connections: one attempt for each of the first four only."""
    listener = listen("127.0.0.1")
    port = listener.port
    listener.close()
    many = [f"127.0.0.{n}" for n in range(1, 7)]
    fetcher = fetcher_with(
        admitted=(ip_network("127.0.0.0/29"),), resolver=table_resolver({"many.test": many})
    )
    attempted = _attempts(monkeypatch)

    with pytest.raises(Retryable, match="ConnectError"):
        fetch(fetcher, f"http://many.test:{port}/file")

    assert ADDRESSES_TRIED == 4
    assert attempted == many[:ADDRESSES_TRIED]


def test_an_address_past_those_tried_is_still_judged(
    fetcher_with: Callable[..., Fetcher],  # noqa: F811
    server: FileServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first address would answer, and a refused one further down refuses them all."""
    names = {"many.test": ["127.0.0.1", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.2"]}
    admitted = tuple(ip_network(address) for address in names["many.test"][:4])
    fetcher = fetcher_with(admitted=admitted, resolver=table_resolver(names))
    attempted = _attempts(monkeypatch)

    with pytest.raises(Refused, match=r"^refused: 127\.0\.0\.2 is a loopback address"):
        fetch(fetcher, f"http://many.test:{server.port}/file")

    assert attempted == []

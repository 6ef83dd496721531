"""uvicorn's protocol with each response sent in one write, and the request head bounded
(app/http_protocol.py; the real server: tests/reliability/test_header_limits.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn import Config
from uvicorn.server import ServerState

from app import http_protocol
from app.config import get_settings
from app.http_protocol import MAX_HEAD_BYTES, HeldWrites, HttpProtocol

pytestmark = pytest.mark.anyio


class Recording(asyncio.Transport):
    """A connection's transport that records what is done to it."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[str, bytes]] = []
        self.closing = False
        self.unsent = 0  # what the peer has not taken yet

    def write(self, data: bytes | bytearray | memoryview) -> None:
        # uvloop raises on both ("Cannot call write() after write_eof()").
        assert not self.closing, "written after close"
        assert ("eof", b"") not in self.events, "written after the end of writing"
        self.events.append(("write", bytes(data)))

    def close(self) -> None:
        self.closing = True
        self.events.append(("close", b""))

    def abort(self) -> None:
        self.closing = True
        self.events.append(("abort", b""))

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.events.append(("eof", b""))

    def get_write_buffer_size(self) -> int:
        return self.unsent

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        addresses = {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}
        return addresses.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def answer_in_two_messages(scope: Scope, receive: Receive, send: Send) -> None:
    assert scope["type"] == "http"
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"5")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"hello"})


def connected(app: ASGIApp = answer_in_two_messages) -> tuple[HttpProtocol, Recording]:
    config = Config(app, http=HttpProtocol, log_config=None, lifespan="off")
    protocol = HttpProtocol(config=config, server_state=ServerState(), app_state={})
    transport = Recording()
    protocol.connection_made(transport)
    return protocol, transport


async def answered(protocol: HttpProtocol, *pieces: bytes) -> None:
    for piece in pieces:
        protocol.data_received(piece)
    for _ in range(10):  # the application's task, then the end of its turn
        await asyncio.sleep(0)


async def test_a_response_goes_out_in_one_write() -> None:
    protocol, transport = connected()

    await answered(protocol, b"GET / HTTP/1.1\r\nhost: stemhook\r\n\r\n")

    [(event, data)] = transport.events
    assert event == "write"
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert data.endswith(b"\r\n\r\nhello")


async def test_a_head_in_pieces_and_a_big_body_with_its_head_are_served() -> None:
    protocol, transport = connected()
    get = b"GET / HTTP/1.1\r\nhost: stemhook\r\n\r\n"
    body = b"x" * (2 * MAX_HEAD_BYTES)
    post = b"POST / HTTP/1.1\r\nhost: stemhook\r\ncontent-length: %d\r\n\r\n" % len(body)

    await answered(protocol, get[:10], get[10:])
    await answered(protocol, post + body)  # one read: far more than a head's limit, mostly body

    assert [data[:15] for _, data in transport.events] == [b"HTTP/1.1 200 OK"] * 2
    assert protocol._head_timer is None


PADDING = b"x-padding: " + b"a" * 4096
TOO_LONG = [b"POST / HTTP/1.1\r\n", *[PADDING] * 20]
GET = b"GET / HTTP/1.1\r\nhost: stemhook\r\n\r\n"
HEAD_TIMEOUT_S = 0.05


@pytest.fixture
def short_linger(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_protocol, "LINGER_S", 0.05)


@pytest.mark.usefixtures("short_linger")
async def test_a_head_beyond_the_limit_is_answered_431_and_closed_lingering() -> None:
    protocol, transport = connected()

    await answered(protocol, *TOO_LONG)
    (_, answer), eof = transport.events
    await answered(protocol, *[PADDING] * 20)  # still read, and dropped
    lingered = list(transport.events)
    await asyncio.sleep(0.1)

    assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert b'{"error":{"code":"head_too_large"' in answer
    assert eof == ("eof", b"")
    assert lingered == transport.events[:2]
    assert transport.events[2:] == [("close", b"")]


@pytest.fixture
def short_head_timeout(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("STEMHOOK_BODY_TIMEOUT_S", str(HEAD_TIMEOUT_S))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.usefixtures("short_linger", "short_head_timeout")
async def test_a_head_that_does_not_arrive_in_time_is_answered_408() -> None:
    protocol, transport = connected()

    await answered(protocol, b"POST / HTTP/1.1\r\nhost: stem")
    assert transport.events == []
    await asyncio.sleep(HEAD_TIMEOUT_S * 1.5)
    (_, answer), eof = transport.events

    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert eof == ("eof", b"")


def held_back() -> tuple[ASGIApp, asyncio.Event]:
    """An application that answers once released."""
    release = asyncio.Event()

    async def answer_when_released(scope: Scope, receive: Receive, send: Send) -> None:
        await release.wait()
        await answer_in_two_messages(scope, receive, send)

    return answer_when_released, release


def written(transport: Recording) -> list[bytes]:
    """Each write's status line, and the other events by name."""
    return [data.split(b"\r\n")[0] if data else event.encode() for event, data in transport.events]


@pytest.mark.usefixtures("short_linger")
async def test_a_refusal_follows_the_answers_to_earlier_requests() -> None:
    app, release = held_back()
    protocol, transport = connected(app)

    await answered(protocol, GET, GET, *TOO_LONG)  # the second waits behind the first
    assert transport.events == []
    release.set()
    await answered(protocol)
    await asyncio.sleep(0.1)

    assert written(transport) == [
        b"HTTP/1.1 200 OK",
        b"HTTP/1.1 200 OK",
        b"HTTP/1.1 431 Request Header Fields Too Large",
        b"eof",
        b"close",
    ]
    assert protocol.server_state.total_requests == 2


@pytest.mark.usefixtures("short_linger")
async def test_a_server_shutting_down_closes_after_the_answer_without_a_refusal() -> None:
    app, release = held_back()
    protocol, transport = connected(app)

    await answered(protocol, GET, *TOO_LONG)
    protocol.shutdown()  # the answer in flight is the last, then the connection closes
    release.set()
    await answered(protocol)
    await asyncio.sleep(0.1)

    assert written(transport) == [b"HTTP/1.1 200 OK", b"close"]


@pytest.mark.usefixtures("short_linger", "short_head_timeout")
async def test_a_head_begun_before_the_answer_before_it_is_timed_out_not_kept_alive() -> None:
    app, release = held_back()
    protocol, transport = connected(app)
    protocol.timeout_keep_alive = 0  # type: ignore[assignment]  # would close at once

    await answered(protocol, GET, b"POST / HTTP/1.1\r\nhost: stem")
    release.set()
    await answered(protocol)
    assert written(transport) == [b"HTTP/1.1 200 OK"]
    await asyncio.sleep(HEAD_TIMEOUT_S * 1.5)

    assert written(transport) == [b"HTTP/1.1 200 OK", b"HTTP/1.1 408 Request Timeout", b"eof"]


@pytest.mark.usefixtures("short_linger", "short_head_timeout")
async def test_a_head_left_unread_while_earlier_requests_wait_is_not_timed_out() -> None:
    app, release = held_back()
    protocol, transport = connected(app)

    # The second request waits behind the first, and uvicorn reads nothing more until then.
    await answered(protocol, GET + GET + b"POST / HTTP/1.1\r\nhost: stem")
    await asyncio.sleep(HEAD_TIMEOUT_S * 3)
    assert transport.events == []
    release.set()
    await answered(protocol)
    assert written(transport) == [b"HTTP/1.1 200 OK"] * 2
    await asyncio.sleep(HEAD_TIMEOUT_S * 4)  # the next check of the head, then the linger

    assert written(transport)[2:] == [b"HTTP/1.1 408 Request Timeout", b"eof", b"close"]


async def test_a_body_read_with_the_start_of_the_next_head_is_not_counted_in_the_head() -> None:
    protocol, transport = connected()
    body = b"x" * (2 * MAX_HEAD_BYTES)
    post = b"POST / HTTP/1.1\r\nhost: stemhook\r\ncontent-length: %d\r\n\r\n" % len(body)

    await answered(protocol, post + body + GET[:10])
    await answered(protocol, GET[10:])

    assert written(transport) == [b"HTTP/1.1 200 OK"] * 2


@pytest.mark.usefixtures("short_linger")
async def test_an_answer_the_sender_does_not_read_is_dropped_with_the_connection() -> None:
    protocol, transport = connected()

    await answered(protocol, *TOO_LONG)
    transport.unsent = 1024
    await asyncio.sleep(0.1)

    assert [event for event, _ in transport.events] == ["write", "eof", "abort"]


@pytest.mark.usefixtures("short_linger")
async def test_a_connection_lost_while_lingering_is_left_alone() -> None:
    protocol, transport = connected()

    await answered(protocol, *TOO_LONG)
    protocol.connection_lost(ConnectionResetError())
    await asyncio.sleep(0.1)

    assert [event for event, _ in transport.events] == ["write", "eof"]


async def test_a_write_waits_for_the_next_or_the_end_of_the_turn_and_goes_before_a_close() -> None:
    transport = Recording()
    writes = HeldWrites(transport)

    writes.write(b"head ")
    assert transport.events == []
    writes.write(b"body")
    assert transport.events == [("write", b"head body")]
    writes.write(b"alone")
    await asyncio.sleep(0)
    writes.write(b"last")
    writes.close()
    await asyncio.sleep(0)

    assert transport.events == [
        ("write", b"head body"),
        ("write", b"alone"),
        ("write", b"last"),
        ("close", b""),
    ]


async def test_an_abort_drops_what_waits() -> None:
    transport = Recording()
    writes = HeldWrites(transport)

    writes.write(b"never sent")
    writes.abort()
    await asyncio.sleep(0)

    assert transport.events == [("abort", b"")]

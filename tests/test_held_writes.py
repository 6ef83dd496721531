"""One write per response through uvicorn's own protocol (app/held_writes.py), guarded: if a
uvicorn release writes a response some other way, or stemhook's own stack comes to yield between
an answer's head and body, these fail instead of stemhook silently sending two segments again.
On the asyncio loop and on uvloop, which `stemhook serve` runs."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from app.config import Settings
from app.held_writes import HeldWrites, HeldWritesProtocol
from app.main import create_app
from tests.api.payloads import ci_json

pytestmark = [pytest.mark.anyio, pytest.mark.servers]
ANSWER = b'{"delivery_id": 1}'
PARTS = [b"a" * 100_000, b"b" * 10, b"c" * 70_000]


@pytest.fixture(params=["asyncio", ("asyncio", {"use_uvloop": True})], ids=["asyncio", "uvloop"])
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    return request.param


class Recording:
    """The server's real transport, noting each write that reaches it."""

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class RecordedProtocol(HeldWritesProtocol):
    transports: list[Recording] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        recording = Recording(transport)
        RecordedProtocol.transports.append(recording)
        super().connection_made(recording)  # type: ignore[arg-type]


async def toy(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body", False):
        pass
    if scope["path"] == "/parts":
        size = str(sum(map(len, PARTS))).encode()
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", size)]}
        )
        for part in PARTS:
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    length = str(len(ANSWER)).encode()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", length)]}
    )
    await send({"type": "http.response.body", "body": ANSWER})


@asynccontextmanager
async def serving(app: ASGIApp, *, lifespan: str = "off") -> AsyncIterator[int]:
    """The app served by uvicorn with the recorded protocol on a socket already listening, so
    that a client may connect at once (the backlog holds it until the server accepts)."""
    RecordedProtocol.transports = []
    listening = socket.create_server(("127.0.0.1", 0))
    config = uvicorn.Config(
        app,
        http=RecordedProtocol,
        lifespan=lifespan,
        log_level="warning",  # type: ignore[arg-type]
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[listening]))
    try:
        yield listening.getsockname()[1]
    finally:
        server.should_exit = True
        await task
        listening.close()


async def exchange(port: int, requests: list[bytes]) -> bytes:
    """The requests sent on one connection, the last one closing it; everything answered."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"".join(requests))
    answered = await reader.read()  # to the end: the server closes after the last answer
    writer.close()
    await writer.wait_closed()
    return answered


def request(path: str, *, body: bytes = b"{}", last: bool = False, method: str = "POST") -> bytes:
    close = b"connection: close\r\n" if last else b""
    head = f"{method} {path} HTTP/1.1\r\nhost: x\r\ncontent-length: {len(body)}\r\n".encode()
    return head + close + b"\r\n" + body


async def test_each_answer_reaches_the_socket_in_one_write() -> None:
    async with serving(toy) as port:
        answered = await exchange(port, [request("/"), request("/", last=True)])
    (transport,) = RecordedProtocol.transports

    assert len(transport.writes) == 2
    assert all(write.endswith(ANSWER) for write in transport.writes)
    assert b"".join(transport.writes) == answered


async def test_a_body_in_parts_arrives_whole_and_in_order() -> None:
    async with serving(toy) as port:
        answered = await exchange(port, [request("/parts", last=True)])
    (transport,) = RecordedProtocol.transports

    head, body = answered.split(b"\r\n\r\n", 1)
    assert body == b"".join(PARTS)
    # Each write takes the one held before it: the head with the first part, then the rest.
    assert transport.writes == [head + b"\r\n\r\n" + PARTS[0], PARTS[1] + PARTS[2]]


async def test_stemhooks_answers_leave_in_one_write_each(settings: Settings) -> None:
    """The application as served: its middleware must not yield between head and body."""
    callback = request("/callbacks", body=ci_json("j-one-write", "Success"))
    health = request("/healthz", body=b"", method="GET", last=True)
    async with serving(create_app(settings), lifespan="on") as port:
        answered = await exchange(port, [callback, health])
    (transport,) = RecordedProtocol.transports

    assert answered.startswith(b"HTTP/1.1 200") and answered.count(b"HTTP/1.1 200") == 2
    assert len(transport.writes) == 2
    assert b"".join(transport.writes) == answered


async def test_a_lone_write_goes_out_within_the_turn_and_close_sends_what_is_held() -> None:
    sent: list[bytes] = []

    class Sink(asyncio.Transport):
        def write(self, data: Any) -> None:
            sent.append(bytes(data))

        def is_closing(self) -> bool:
            return False

        def close(self) -> None:
            sent.append(b"<closed>")

    held = HeldWrites(Sink())
    held.write(b"head")
    assert sent == []
    await asyncio.sleep(0)  # the end of this turn of the loop
    held.write(b"last")
    held.close()

    assert sent == [b"head", b"last", b"<closed>"]

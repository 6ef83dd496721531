"""One write per response through uvicorn's own protocol (app/held_writes.py), guarded: if a
uvicorn release writes a response some other way, these fail instead of stemhook silently
sending two segments again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from app.held_writes import HeldWrites, HeldWritesProtocol
from tests.servers import free_port

pytestmark = pytest.mark.anyio
ANSWER = b'{"delivery_id": 1}'
PARTS = [b"a" * 100_000, b"b" * 10, b"c" * 70_000]


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


async def app(scope: Scope, receive: Receive, send: Send) -> None:
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
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(ANSWER)).encode()),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": ANSWER})


@asynccontextmanager
async def serving() -> AsyncIterator[int]:
    RecordedProtocol.transports = []
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, http=RecordedProtocol, lifespan="off", log_level="warning"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "the server did not start"
        await asyncio.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        await task


async def exchange(port: int, paths: list[str]) -> list[bytes]:
    """Each path requested in turn on one connection; each answer as read."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answers = []
    for path in paths:
        writer.write(f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{{}}".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        answers.append(head + await reader.readexactly(length))
    writer.close()
    await writer.wait_closed()
    return answers


async def test_each_answer_reaches_the_socket_in_one_write() -> None:
    async with serving() as port:
        answers = await exchange(port, ["/", "/"])
    (transport,) = RecordedProtocol.transports

    assert [answer.endswith(ANSWER) for answer in answers] == [True, True]
    assert transport.writes == answers


async def test_a_body_in_parts_arrives_whole_and_in_order() -> None:
    async with serving() as port:
        (answer,) = await exchange(port, ["/parts"])
    (transport,) = RecordedProtocol.transports

    assert answer.split(b"\r\n\r\n", 1)[1] == b"".join(PARTS)
    assert b"".join(transport.writes) == answer
    assert len(transport.writes) < 1 + len(PARTS)


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

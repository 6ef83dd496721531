"""A bare HTTP/1.1 client on asyncio streams, for what httpx cannot do or cannot do fast.

httpx writes a whole request body before it reads the answer, so it cannot show a server
refusing a 1 GB upload early, nor trickle a body; and its connection pool spends seconds
setting up a hundred concurrent connections on a 2-core machine, longer than the server needs
to answer a thousand requests (measured: 1,000 GET /healthz over 200 connections take 16 s
with httpx and 0.13 s with this). Answers are read by Content-Length, chunked, or to the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

Headers = Iterable[tuple[str, str]]


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass(frozen=True)
class Streamed:
    """How a streamed request ended: the answer (None if the connection just closed), how many
    bytes after the start went out before it came (into the kernel's buffers included), and
    when that was."""

    answer: Answer | None
    bytes_sent: int
    elapsed_s: float

    @property
    def status(self) -> int | None:
        return status(self.answer)


def status(answer: Answer | None) -> int | None:
    """The answer's status, None for a connection that closed without one."""
    return None if answer is None else answer.status


class Connection:
    """One keep-alive connection; requests on it go one after another."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, url: str) -> AsyncIterator[Connection]:
        reader, writer = await _connect(url)
        try:
            yield cls(reader, writer)
        finally:
            await _close(writer)

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: Headers = ()
    ) -> Answer:
        head = _head(method, path, [*headers, ("Content-Length", str(len(body)))])
        self._writer.write(head + body)
        await self._writer.drain()
        answer = await read_answer(self._reader)
        if answer is None:
            raise ConnectionError("the server closed the connection without an answer")
        return answer


async def send_raw(url: str, data: bytes, *, timeout_s: float = 30) -> Answer | None:
    """Bytes exactly as given (malformed HTTP too); the answer, or None if it just closed."""
    reader, writer = await _connect(url)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(read_answer(reader), timeout_s)
    finally:
        await _close(writer)


async def post_streaming(
    url: str,
    path: str,
    chunks: Iterable[bytes],
    *,
    headers: Headers = (),
    chunked: bool,
    pause_s: float = 0,
    timeout_s: float = 30,
) -> Streamed:
    """POST a body chunk by chunk, as `Transfer-Encoding: chunked` or raw under whatever
    Content-Length `headers` declare; see `stream`."""
    framing = [("Transfer-Encoding", "chunked")] if chunked else []
    return await stream(
        url,
        _head("POST", path, [*headers, *framing]),
        (b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks) if chunked else chunks,
        end=b"0\r\n\r\n" if chunked else b"",
        pause_s=pause_s,
        timeout_s=timeout_s,
    )


async def stream(
    url: str,
    start: bytes,
    pieces: Iterable[bytes],
    *,
    end: bytes = b"",
    pause_s: float = 0,
    timeout_s: float = 30,
) -> Streamed:
    """Send `start`, then the pieces `pause_s` apart, then `end`; stop sending as soon as the
    server answers or hangs up, so that an early refusal is seen as early as it comes."""
    started = time.monotonic()
    reader, writer = await _connect(url)
    writer.write(start)
    answer = asyncio.ensure_future(read_answer(reader))
    sent = 0
    try:
        async with asyncio.timeout(timeout_s):
            for piece in pieces:
                if answer.done() or not await _sent(writer, answer, piece):
                    break
                sent += len(piece)
                if pause_s:
                    await asyncio.wait({answer}, timeout=pause_s)
            else:
                if end:
                    await _sent(writer, answer, end)
            await asyncio.wait({answer})
        return Streamed(answer.result(), sent, time.monotonic() - started)
    finally:
        if not answer.done():
            answer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await answer
        await _close(writer)


async def _sent(writer: asyncio.StreamWriter, answer: asyncio.Future[Any], data: bytes) -> bool:
    """Write and wait until the server takes it; False once it answered or hung up instead."""
    if writer.is_closing():
        return False
    writer.write(data)
    drained = asyncio.ensure_future(writer.drain())
    await asyncio.wait({drained, answer}, return_when=asyncio.FIRST_COMPLETED)
    if not drained.done():
        drained.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await drained
        return False
    return drained.exception() is None


async def read_answer(reader: asyncio.StreamReader) -> Answer | None:
    """The next answer on the connection; None if it closed before a whole one came."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines if line)
        }
        if "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding") == "chunked":
            body = await _read_chunked(reader)
        else:
            body = await reader.read()
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    return Answer(int(status_line.split()[1]), headers, body)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
        body += await reader.readexactly(size)
        await reader.readexactly(2)
    await reader.readuntil(b"\r\n")
    return bytes(body)


def _head(method: str, path: str, headers: Headers) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: stemhook", *(f"{n}: {v}" for n, v in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _connect(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    parts = urlsplit(url)
    return await asyncio.open_connection(parts.hostname, parts.port)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError, OSError):
        await writer.wait_closed()

"""uvicorn's httptools protocol, with each response sent in one write instead of two.

uvicorn writes a response's status line and headers as soon as the application sends them, and
the body when it follows: two send() calls, two TCP segments, and two wake-ups of the client,
which on a busy machine each preempt the server (py-spy put 18 % of the web process's samples on
those two writes under load). Here a connection's writes of one turn of the event loop are
joined and sent at its end: a response, and any others the connection finished in that turn, in
one segment.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class HttpProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports have asyncio.Transport's methods, not its class.
        super().connection_made(OneWritePerTurn(cast(asyncio.Transport, transport)))


class OneWritePerTurn(asyncio.Transport):
    """A transport whose writes wait for the end of the event loop's turn, then go out as one.

    Everything else is the wrapped transport's; closing sends what waits first, as the wrapped
    transport itself would before it closes."""

    def __init__(self, transport: asyncio.Transport) -> None:
        super().__init__()
        self._transport = transport
        self._pending: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._send)
        self._pending.append(bytes(data))

    def _send(self) -> None:
        if self._pending:
            if not self._transport.is_closing():
                self._transport.write(b"".join(self._pending))
            self._pending.clear()

    def close(self) -> None:
        self._send()
        self._transport.close()

    def abort(self) -> None:
        self._pending.clear()
        self._transport.abort()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def write_eof(self) -> None:
        self._send()
        self._transport.write_eof()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._pending))

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()

"""Each response leaves in one write: uvicorn writes a response's head, then its body.

uvicorn's httptools protocol writes the head when the application starts the response and the
body when it sends it, two writes and, with TCP_NODELAY, two segments, for a callback's answer
of a few hundred bytes: a send system call in the server and a read in the client for each.
This protocol is uvicorn's own, given a transport (asyncio's public Transport interface) that
holds a write until the next one in the same turn of the event loop and sends both as one.
The head and the body of an answer sent in one step of its task are then one write; a write
nothing follows goes out with the loop's next callbacks, without waiting for I/O.

uvicorn takes a protocol class through its public `http=` setting; this one overrides only
`connection_made`, asyncio.Protocol's own hook. Pinned to the uvicorn minor it was measured with,
guarded by tests/test_held_writes.py (docs/decisions/0013-one-write-per-response.md).
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class HeldWritesProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports have asyncio.Transport's methods, not its class.
        super().connection_made(HeldWrites(cast(asyncio.Transport, transport)))


class HeldWrites(asyncio.Transport):
    """A transport that holds a write until the next one, then sends both as one; a write
    nothing follows goes out at the end of the event loop's turn. Everything else is the wrapped
    transport's; closing sends what is held first."""

    def __init__(self, transport: asyncio.Transport) -> None:
        super().__init__()
        self._transport = transport
        self._loop = asyncio.get_running_loop()
        self._held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:  # an empty body ends a response: nothing to send or to hold
            return
        held = self._held
        if held is None:
            # Held past the caller's return, so a bytearray it may reuse is copied.
            self._held = data if type(data) is bytes else bytes(data)
            self._loop.call_soon(self._send_held)
        else:
            self._held = None
            self._transport.write(held + data)

    def _send_held(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if not self._transport.is_closing():
                self._transport.write(held)

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def close(self) -> None:
        self._send_held()
        self._transport.close()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def write_eof(self) -> None:
        self._send_held()
        self._transport.write_eof()

    def get_write_buffer_size(self) -> int:
        held = len(self._held) if self._held is not None else 0
        return self._transport.get_write_buffer_size() + held

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()

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

"""uvicorn's httptools protocol, with each response sent in one write instead of two, and the
request head bounded in size and in time.

uvicorn writes a response's status line and headers as soon as the application sends them, and
the body when it follows: two send() calls, two TCP segments, and two wake-ups of the client,
which on a busy machine each preempt the server (py-spy put 18 % of the web process's samples on
those two writes under load). Here a write is held until the connection's next one, which it
joins, or until the end of the event loop's turn: the head goes out with the body, at once.

httptools takes a header section of any size, and uvicorn waits for it as long as it trickles
in: a 32 MiB header was buffered whole, and a head sent a line at a time held its connection
forever (slow loris; tests/reliability/test_header_limits.py). Here a head still incomplete
after MAX_HEAD_BYTES more than the read it began in is answered 431, and one still incomplete
STEMHOOK_BODY_TIMEOUT_S after its first bytes 408, after any earlier request's answer; then the
connection is closed lingering, as nginx closes (HttpProtocol._answer_and_linger). A head that
arrives whole, as nearly every one does, costs two look-ups; a timer is armed only for one that
does not.
"""

from __future__ import annotations

import asyncio
import logging
from http import HTTPStatus
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.api.schemas.common import ErrorBody, ErrorOut
from app.config import get_settings
from app.errors import HeadTooLarge, RequestTimeout, StemhookError

# nginx takes up to 4 x 8 KiB by default, h11 16 KiB: 64 KiB leaves room for any real sender.
MAX_HEAD_BYTES = 64 * 1024
# How long a refused connection is still read (and what arrives dropped) after its answer.
LINGER_S = 2.0

log = logging.getLogger(__name__)


class HttpProtocol(HttpToolsProtocol):
    # The scope of a request head the parser stopped inside, the bytes read for it since, and a
    # timer: only while there is one.
    _head_scope: object | None = None
    _head_bytes = 0
    _head_timer: asyncio.TimerHandle | None = None
    _refused = False  # refused: what arrives is dropped until the close
    _linger: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports have asyncio.Transport's methods, not its class.
        super().connection_made(HeldWrites(cast(asyncio.Transport, transport)))

    def data_received(self, data: bytes) -> None:
        # The base class by name, not super(): this runs for every read, and hooks of their own
        # on each request's head and end cost ~1 us a request more than looking at the scope.
        if self._refused:
            return
        HttpToolsProtocol.data_received(self, data)
        # uvicorn starts a request's scope when its first byte is parsed, and sets its method
        # once the head is complete: a scope without one is a head the parser stopped inside.
        scope = self.scope
        if scope is not None and "method" not in scope and not self.transport.is_closing():
            if scope is self._head_scope:
                self._head_bytes += len(data)
                if self._head_bytes > MAX_HEAD_BYTES:
                    self._refuse(HeadTooLarge(f"the request head exceeds {MAX_HEAD_BYTES} bytes"))
            else:
                # A head that began in this read, after an earlier request's bytes maybe: the
                # parser does not say where, so it is counted from the next read (a read takes
                # at most 256 KiB).
                self._head_scope, self._head_bytes = scope, 0
                self._stop_head_timer()
                self._head_timer = self.loop.call_later(
                    get_settings().body_timeout_s, self._head_too_slow
                )
        elif self._head_scope is not None:
            self._head_scope = None
            self._stop_head_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._head_timer is not None:
            # The next request's head has begun: its own timer ends the connection if it stalls,
            # with a 408, not the keep-alive timer uvicorn has just armed, without one.
            self._unset_keepalive_if_required()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        if self._linger is not None:
            self._linger.cancel()
        super().connection_lost(exc)

    def _head_too_slow(self) -> None:
        timeout_s = get_settings().body_timeout_s
        if self.flow.read_paused:
            # uvicorn stopped reading until earlier requests are answered: not the sender's delay.
            self._head_timer = self.loop.call_later(timeout_s, self._head_too_slow)
            return
        self._head_timer = None
        self._refuse(RequestTimeout(f"the request head did not arrive within {timeout_s:g} s"))

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _refuse(self, error: StemhookError) -> None:
        """Answer as the application answers its errors, after any earlier request's answer
        still to go out (HTTP/1.1 answers in order), and close the connection; what arrives
        from now on is dropped."""
        self._stop_head_timer()
        self._refused = True
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "an unknown client"
        log.warning("refused a request head from %s: %s", client, error.message)
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            self._answer_and_linger(error)
            return
        # The newest request's answer is the last before the refusal: pipelined ones go in turn.
        answered = cycle.on_response

        def then_refuse() -> None:
            answered()
            if not self.transport.is_closing():  # the server is shutting down
                self._answer_and_linger(error)

        cycle.on_response = then_refuse

    def _answer_and_linger(self, error: StemhookError) -> None:
        """The answer and a FIN go out at once, but the connection is read, and what arrives
        dropped, for LINGER_S more, as nginx closes. A close with the sender's bytes still unread
        resets the connection, and the reset can discard the answer in the sender's buffers
        before it is read (seen here: an endless header's 431 lost, in one test run of many)."""
        body = ErrorOut(error=ErrorBody(code=error.code, message=error.message))
        content = body.model_dump_json(exclude_none=True).encode()
        head = (
            f"HTTP/1.1 {error.status_code} {HTTPStatus(error.status_code).phrase}\r\n"
            "content-type: application/json\r\n"
            f"content-length: {len(content)}\r\n"
            "connection: close\r\n\r\n"
        )
        self.transport.write(head.encode() + content)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._linger = self.loop.call_later(LINGER_S, self._end_linger)

    def _end_linger(self) -> None:
        self._linger = None
        # An answer still unsent by now is one the sender is not reading: the connection is not
        # kept for it.
        if self.transport.get_write_buffer_size():
            self.transport.abort()
        else:
            self.transport.close()


class HeldWrites(asyncio.Transport):
    """A transport that holds a write until the next one, then sends both as one; a write
    nothing follows goes out at the end of the event loop's turn.

    Everything else is the wrapped transport's; closing sends what is held first, as the wrapped
    transport itself would before it closes."""

    def __init__(self, transport: asyncio.Transport) -> None:
        super().__init__()
        self._transport = transport
        self._loop = asyncio.get_running_loop()
        self._held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held is None:
            # A transport copies what it is given: the caller may reuse a bytearray at once.
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

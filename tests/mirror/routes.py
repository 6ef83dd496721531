"""Routes of the loopback file server (tests/fetching/servers.py) that the mirror tests need."""

from __future__ import annotations

import threading

from tests.fetching.servers import Handler


class Flaky:
    """A route that answers `failures` 503s, then the file."""

    def __init__(self, failures: int, body: bytes) -> None:
        self.failures = failures
        self.body = body

    def __call__(self, handler: Handler) -> None:
        if self.failures:
            self.failures -= 1
            handler.answer(503, b"busy")
        else:
            handler.answer(200, self.body, {"Content-Type": "audio/mpeg"})


class Stalling:
    """A route whose first answer sends the first piece of `body`, says so, and sends the rest
    only once released; later answers send it whole."""

    def __init__(self, body: bytes, first_piece: int = 65536) -> None:
        self.body = body
        self.first_piece = first_piece
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, handler: Handler) -> None:
        stall = not self.started.is_set()
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(self.body)))
        handler.send_header("Content-Type", "audio/wav")
        handler.end_headers()
        if stall:
            handler.wfile.write(self.body[: self.first_piece])
            handler.wfile.flush()
            self.started.set()
            self.release.wait(timeout=120)
            handler.wfile.write(self.body[self.first_piece :])
        else:
            handler.wfile.write(self.body)

"""Loopback servers for the fetcher's tests: an HTTP(S) file server that records what it was
asked, and a bare listener that tells whether anything ever connected to it."""

from __future__ import annotations

import json
import socket
import ssl
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

Route = Callable[["Handler"], None]


class FileServer(ThreadingHTTPServer):
    """Serves `routes` (path -> writer) on `host`, over TLS when given a context."""

    daemon_threads = True

    def __init__(self, host: str, routes: dict[str, Route], tls: ssl.SSLContext | None) -> None:
        super().__init__((host, 0), Handler)
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.routes = routes
        self.requests: list[tuple[str, dict[str, str]]] = []
        # The bodies of the requests that had one (POST), in order.
        self.bodies: list[bytes] = []
        self.released = threading.Event()
        self._thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def stop(self) -> None:
        self.released.set()
        self.shutdown()
        self.server_close()
        self._thread.join()

    def handle_error(self, request: object, client_address: object) -> None:
        # A client hanging up mid-body (a cut-off fetch) is expected; anything else is printed.
        if not isinstance(sys.exc_info()[1], ConnectionError | ssl.SSLError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FileServer
    body = b""  # a POST's

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        self.server.requests.append((path, {k.lower(): v for k, v in self.headers.items()}))
        route = self.server.routes.get(path)
        if route is None:
            self.answer(404, b"no such route")
        else:
            route(self)

    def do_POST(self) -> None:
        self.body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.bodies.append(self.body)
        self.do_GET()

    def query(self, name: str) -> str:
        return parse_qs(urlsplit(self.path).query)[name][0]

    def answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def echo(self) -> None:
        """The request's headers as JSON: what the fetcher sent."""
        self.answer(200, json.dumps({k.lower(): v for k, v in self.headers.items()}).encode())

    def chunked(self, pieces: int, piece: bytes) -> None:
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for _ in range(pieces):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        self.wfile.write(b"0\r\n\r\n")

    def never_answer(self) -> None:
        self.server.released.wait()
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the tests assert on `requests`."""


class Listener:
    """A socket listening on `host` that nothing should reach: a connection attempt completes
    in the kernel's backlog before the client's connect() returns, so `connected()` after the
    fetch sees it even though nothing ever calls accept() meanwhile."""

    def __init__(self, host: str) -> None:
        self._socket = socket.create_server((host, 0), backlog=16)
        self._socket.setblocking(False)
        self.port: int = self._socket.getsockname()[1]

    def connected(self) -> bool:
        try:
            connection, _ = self._socket.accept()
        except BlockingIOError:
            return False
        connection.close()
        return True

    def close(self) -> None:
        self._socket.close()

"""The benchmarks' stand-in servers on loopback, fast enough not to be what is measured: request
heads read by hand from raw sockets (http.server spends far more per request), one thread per
connection, keep-alive as HTTP/1.1 has it, bodies never read (they answer GETs only).

`serve(answer)` prints the port it listens on (127.0.0.1 only), then calls `answer(connection,
head)` for each request head until killed; `target(head)` is a GET's request target. A benchmark
starts such a server as a process of its own (bench/stand_ins.py). Only the standard library:
the server's start-up stays short.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from contextlib import suppress

Answer = Callable[[socket.socket, bytes], None]
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
_HEAD_LIMIT = 16 * 1024


def serve(answer: Answer) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    print(listener.getsockname()[1], flush=True)
    with listener:
        while True:
            connection, _ = listener.accept()
            threading.Thread(target=_serve, args=(connection, answer), daemon=True).start()


def target(head: bytes) -> bytes | None:
    """The request target of a GET (/path?query), None for anything else."""
    request_line = head.split(b"\r\n", 1)[0].split()
    if len(request_line) != 3 or request_line[0] != b"GET":
        return None
    return request_line[1]


def _serve(connection: socket.socket, answer: Answer) -> None:
    # A client that hangs up mid-answer (a stopping worker abandons its request) ends only this.
    with connection, suppress(ConnectionError):
        pending = b""
        while True:
            while b"\r\n\r\n" not in pending:
                received = connection.recv(65536)
                if not received or len(pending) > _HEAD_LIMIT:
                    return
                pending += received
            head, _, pending = pending.partition(b"\r\n\r\n")
            answer(connection, head)

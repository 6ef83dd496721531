"""A loopback file server fast enough not to be what a mirror benchmark measures.

    python -m bench.mirror.fileserver SOURCE    # prints its port, then serves until killed

GET /<size>/<name> answers 200 with `size` bytes: SOURCE's bytes over and over, sent with
sendfile(2) from the page cache, so the server spends next to no CPU per byte (http.server
writes through a buffered file object in Python). Keep-alive as HTTP/1.1 has it, one thread per
connection. Bound to 127.0.0.1 only; anything else than such a GET is answered 404.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
from contextlib import suppress
from pathlib import Path

_HEAD_LIMIT = 16 * 1024


def main() -> None:
    source = Path(sys.argv[1])
    listener = socket.create_server(("127.0.0.1", 0))
    print(listener.getsockname()[1], flush=True)
    with listener, source.open("rb") as file:
        descriptor, length = file.fileno(), os.fstat(file.fileno()).st_size
        while True:
            connection, _ = listener.accept()
            serving = (connection, descriptor, length)
            threading.Thread(target=_serve, args=serving, daemon=True).start()


def _serve(connection: socket.socket, descriptor: int, length: int) -> None:
    # A client that hangs up mid-file (a stopping mirror abandons its fetch) ends only this.
    with connection, suppress(ConnectionError):
        pending = b""
        while True:
            while b"\r\n\r\n" not in pending:
                received = connection.recv(65536)
                if not received or len(pending) > _HEAD_LIMIT:
                    return
                pending += received
            head, _, pending = pending.partition(b"\r\n\r\n")
            size = _size(head)
            if size is None:
                connection.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                continue
            connection.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: audio/mpeg\r\nContent-Length: %d\r\n\r\n" % size
            )
            _send(connection.fileno(), descriptor, length, size)


def _size(head: bytes) -> int | None:
    """The size a request asks for: GET /<size>/<name>."""
    request_line = head.split(b"\r\n", 1)[0].split()
    if len(request_line) != 3 or request_line[0] != b"GET":
        return None
    parts = request_line[1].split(b"/")
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


def _send(connection: int, descriptor: int, length: int, size: int) -> None:
    # os.sendfile reads at an offset of its own, leaving the shared file's position alone.
    offset = 0
    while size:
        sent = os.sendfile(connection, descriptor, offset, min(size, length - offset))
        if not sent:
            raise ConnectionError("sendfile sent nothing")
        size -= sent
        offset = (offset + sent) % length


if __name__ == "__main__":
    main()

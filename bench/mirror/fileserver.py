"""A loopback file server fast enough not to be what a mirror benchmark measures.

    python -m bench.mirror.fileserver SOURCE    # prints its port, then serves until killed

GET /<size>/<name> answers 200 with `size` bytes: SOURCE's bytes over and over, sent with
sendfile(2) from the page cache, so the server spends next to no CPU per byte (http.server
writes through a buffered file object in Python). Served by bench/loopback.py on 127.0.0.1 only;
anything else than such a GET is answered 404.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

from bench.loopback import NOT_FOUND, serve, target


def main() -> None:
    source = Path(sys.argv[1])
    with source.open("rb") as file:
        descriptor, length = file.fileno(), os.fstat(file.fileno()).st_size

        def answer(connection: socket.socket, head: bytes) -> None:
            size = _size(head)
            if size is None:
                connection.sendall(NOT_FOUND)
                return
            connection.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: audio/mpeg\r\nContent-Length: %d\r\n\r\n" % size
            )
            _send(connection.fileno(), descriptor, length, size)

        serve(answer)


def _size(head: bytes) -> int | None:
    """The size a request asks for: GET /<size>/<name>."""
    asked = target(head)
    if asked is None:
        return None
    parts = asked.split(b"/")
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

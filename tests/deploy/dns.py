"""A stand-in for Docker's embedded DNS server (127.0.0.11:53): A records for service names.

Enough for nginx's resolver: one question per query, A records or "no such name".
"""

from __future__ import annotations

import os
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

DOCKER_DNS = ("127.0.0.11", 53)
TYPE_A = 1
CLASS_IN = 1
TTL_S = 600  # Docker's; nginx's `resolver ... valid=` overrides it


@contextmanager
def docker_dns(records: dict[str, list[str]]) -> Iterator[list[str]]:
    """Answer for `records` (name -> addresses) on Docker's address; yields the names asked."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        listener.bind(DOCKER_DNS)
    except PermissionError:
        listener.close()
        message = f"binding {DOCKER_DNS} needs root"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    listener.settimeout(0.05)
    asked: list[str] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                query, sender = listener.recvfrom(512)
            except TimeoutError:
                continue
            name, answer = _answer(query, records)
            asked.append(name)
            listener.sendto(answer, sender)

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    try:
        yield asked
    finally:
        stop.set()
        server.join()
        listener.close()


def _answer(query: bytes, records: dict[str, list[str]]) -> tuple[str, bytes]:
    ident = query[:2]
    labels, offset = [], 12
    while length := query[offset]:
        labels.append(query[offset + 1 : offset + 1 + length].decode())
        offset += 1 + length
    question = query[12 : offset + 5]
    qtype = struct.unpack("!H", query[offset + 1 : offset + 3])[0]
    name = ".".join(labels)
    addresses = records.get(name, []) if qtype == TYPE_A else []
    known = name in records
    flags = 0x8180 if known else 0x8183  # a response, recursion available; 3: no such name
    header = ident + struct.pack("!HHHHH", flags, 1, len(addresses), 0, 0)
    answers = b"".join(
        struct.pack("!HHHIH", 0xC00C, TYPE_A, CLASS_IN, TTL_S, 4) + socket.inet_aton(address)
        for address in addresses
    )
    return name, header + question + answers

"""Framing on the web↔writer socket pair: each message a length prefix, then its pickle.

Both ends are this program, on a socket pair nobody else holds, so pickle is safe here. What
crosses is plain values (tuples, dicts, str, bytes, numbers, None): each end builds its own
objects from them (`to_wire`/`from_wire` in app/ingest/intake.py, answers in
app/ingest/committer.py), because a dataclass pickled by reduction costs a look-up of its
rebuilding function by name at both ends (docs/decisions/0007-the-web-processs-hot-path.md).
"""

from __future__ import annotations

import pickle
import struct
from typing import Any

_LENGTH = struct.Struct("!I")


def frame(message: Any) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(data)) + data


class Unframer:
    """Turns a byte stream back into the messages framed into it, as they complete."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Any]:
        buffer = self._buffer
        buffer += data
        messages, start = [], 0
        with memoryview(buffer) as view:
            while len(view) - start >= _LENGTH.size:
                (length,) = _LENGTH.unpack_from(view, start)
                end = start + _LENGTH.size + length
                if len(view) < end:
                    break
                messages.append(pickle.loads(view[start + _LENGTH.size : end]))
                start = end
        del buffer[:start]
        return messages

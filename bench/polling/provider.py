"""A fake Suno-style API on loopback, fast enough not to be what a polling benchmark measures.

    python -m bench.polling.provider    # prints its port, then serves until killed

GET /api/v1/vocal-removal/record-info?taskId=<id> answers 200 with the PENDING record-info
fixture (tests/fixtures/suno/poll/) about that task: a job still running, so every poll is stored
as a delivery that changes nothing and its watch is polled again after the backoff. The key is
not checked. Served by bench/loopback.py on 127.0.0.1 only; anything else is answered 404.
"""

from __future__ import annotations

import re
import socket
from urllib.parse import parse_qs, urlsplit

import orjson

from app.polling.requests import SUNO_RECORD_INFO
from bench.ingest.payloads import FIXTURES
from bench.loopback import NOT_FOUND, serve, target

PENDING = FIXTURES / "suno" / "poll" / "record_info_pending.json"
# The task ids a benchmark registers: nothing in them needs escaping in JSON.
_TASK_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_MARK = "@task@"


def main() -> None:
    document = orjson.loads(PENDING.read_bytes())
    document["data"]["taskId"] = _MARK
    before, after = orjson.dumps(document).split(_MARK.encode())

    def answer(connection: socket.socket, head: bytes) -> None:
        task_id = _task_id(head)
        if task_id is None:
            connection.sendall(NOT_FOUND)
            return
        body = before + task_id.encode() + after
        connection.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (len(body), body)
        )

    serve(answer)


def _task_id(head: bytes) -> str | None:
    asked = target(head)
    if asked is None:
        return None
    url = urlsplit(asked.decode("latin-1"))
    found = parse_qs(url.query).get("taskId", [])
    if url.path != SUNO_RECORD_INFO or len(found) != 1 or not _TASK_ID.fullmatch(found[0]):
        return None
    return found[0]


if __name__ == "__main__":
    main()

"""One log line per request (and so per delivery): JSON for machines, plain text in a terminal.

The line is written once the answer has gone out, with the request id (taken from X-Request-Id
or made up, and sent back), method, path, status and latency, plus what the handler added: for a
callback, the provider, job ids, delivery id and outcome. Never the query string (a callback URL
carries ?token=), never a header: no secret reaches the log.

Request lines look like every other line (same fields, same time format) but do not go through
`logging`, whose LogRecord and JSON formatter cost a callback many times what writing them
here does (docs/decisions/0007-the-web-processs-hot-path.md). The `stemhook.request` logger's
level still decides whether they are written.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import sys
import time
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("stemhook.request")
FIELDS_KEY = "log_fields"  # request.state[FIELDS_KEY]: what a handler adds to its line
_REQUEST_ID = b"x-request-id"
_MAX_REQUEST_ID = 64
# Made-up request ids: unique per process and start (a random prefix), cheap per request.
_PROCESS = secrets.token_hex(4)
_SEQUENCE = itertools.count(1)
_MILLIS = [f",{millis:03d}" for millis in range(1000)]  # a line's time ends ",042"


def json_lines() -> bool:
    """JSON unless a person reads the terminal."""
    return not sys.stderr.isatty()


def log_config(*, json: bool, level: str) -> dict[str, Any]:
    """A logging.config.dictConfig for stemhook and uvicorn alike."""
    formatter: dict[str, Any] = (
        {
            # The orjson flavour, because the default one's json.dumps weighs on every callback
            # (docs/decisions/0007-the-web-processs-hot-path.md).
            "()": "pythonjsonlogger.orjson.OrjsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        }
        if json
        else {"format": "%(asctime)s %(levelname)-7s %(name)s %(message)s"}
    )
    handler = {"class": "logging.StreamHandler", "formatter": "default"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {"default": handler},
        "root": {"handlers": ["default"], "level": level},
        "loggers": {
            "uvicorn.access": {"level": "WARNING"},
            # The background process's clients: their lines quote whole URLs (a presigned link's
            # signature) and, at DEBUG, failures that quote a request's header values.
            "httpx": {"level": "WARNING"},
            "httpcore": {"level": "WARNING"},
        },
    }


class RequestLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._line = _LineWriter(json=json_lines())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        fields: dict[str, Any] = {}
        scope.setdefault("state", {})[FIELDS_KEY] = fields
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (_REQUEST_ID, request_id)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if log.isEnabledFor(logging.INFO):
                client = scope.get("client")
                method, path = scope["method"], scope["path"]
                self._line.write(
                    f"{method} {path} {status}",
                    {
                        "request_id": request_id.decode(),
                        "method": method,
                        "path": path,
                        "status": status,
                        # To 0.01 ms, as round(ms, 2) but without its float-to-text round trip.
                        "ms": round((time.perf_counter() - started) * 100_000) / 100,
                        "client": client[0] if client else None,
                    },
                    fields,
                )


def _request_id(scope: Scope) -> bytes:
    for name, value in scope["headers"]:
        if name == _REQUEST_ID and 0 < len(value) <= _MAX_REQUEST_ID and value.isascii():
            return bytes(value)
    return f"{_PROCESS}-{next(_SEQUENCE):x}".encode()


class _LineWriter:
    """Writes request lines to standard error as log_config's formatters would: JSON with the
    same names and time format, or the plain text line.

    The lines of one turn of the event loop go out in one write at its end, because standard
    error is line-buffered and a system call per line would cost every callback
    (docs/decisions/0007-the-web-processs-hot-path.md). A line is at most one turn late, and only
    lines of requests already answered can be lost to a crash, as with a write per line. The
    time's second is formatted once per second, as strftime per line would cost more than the
    write, and its milliseconds are taken from a table."""

    def __init__(self, *, json: bool) -> None:
        self._json = json
        self._pending: list[str] = []
        self._second = -1
        self._second_text = ""

    def write(self, message: str, *fields: dict[str, Any]) -> None:
        """One line: the message, then each of `fields` in turn (JSON only)."""
        millis = int(time.time() * 1000)
        second = millis // 1000
        if second != self._second:
            self._second = second
            self._second_text = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        at = self._second_text + _MILLIS[millis % 1000]
        if self._json:
            line = {"time": at, "level": "INFO", "logger": log.name, "message": message}
            for more in fields:
                line.update(more)
            text = orjson.dumps(line, default=str, option=orjson.OPT_APPEND_NEWLINE).decode()
        else:
            text = f"{at} INFO    {log.name} {message}\n"
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        self._pending.append(text)

    def _flush(self) -> None:
        lines, self._pending = self._pending, []
        sys.stderr.write("".join(lines))

"""Noticing that a client went away while its request waits (a long poll)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.requests import Request


@contextlib.asynccontextmanager
async def client_gone(request: Request) -> AsyncIterator[asyncio.Event]:
    """An event set once the client disconnects, while inside: the server answers the request's
    receive() with http.disconnect then (and once the response is complete, which is after)."""
    gone = asyncio.Event()

    async def watch() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass
        gone.set()

    watcher = asyncio.create_task(watch(), name="stemhook-client-gone")
    try:
        yield gone
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher

"""A file server on loopback for the mirror's tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.fetching.servers import FileServer


@pytest.fixture
def serve() -> Iterator[Callable[[dict[str, Any]], FileServer]]:
    servers: list[FileServer] = []

    def start(routes: dict[str, Any]) -> FileServer:
        servers.append(FileServer("127.0.0.1", routes, None))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()

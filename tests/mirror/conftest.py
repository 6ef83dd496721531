"""What the mirror's tests share: a file server on loopback, a store, a clock the test moves,
and a worker fetching from 127.0.0.1 only."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from app.fetching.fetcher import Fetcher
from app.ingest.in_flight import WritesInFlight
from app.mirror.worker import Mirror, MirrorOptions
from app.storage.local import LocalStore
from tests.fetching.servers import FileServer

OPTIONS = MirrorOptions(
    concurrency=4,
    lease=timedelta(minutes=5),
    max_attempts=3,
    retry_base=timedelta(seconds=10),
    retry_cap=timedelta(minutes=10),
    poll_s=0.05,
)


class Clock:
    """The time the worker reckons leases and retries in, moved by the test."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC) + timedelta(seconds=1)

    def __call__(self) -> datetime:
        return self.now


def loopback_fetcher() -> Fetcher:
    return Fetcher(
        admitted=[ip_network("127.0.0.1/32")],
        max_bytes=1_000_000,
        connect_timeout_s=10,
        read_timeout_s=30,
    )


@pytest.fixture
def serve() -> Iterator[Callable[[dict[str, Any]], FileServer]]:
    servers: list[FileServer] = []

    def start(routes: dict[str, Any]) -> FileServer:
        servers.append(FileServer("127.0.0.1", routes, None))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def files(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "files")


@pytest.fixture
def clock() -> Clock:
    return Clock()


def mirror_of(
    engine: Engine,
    files: LocalStore,
    clock: Clock,
    fetcher: Fetcher,
    in_flight: WritesInFlight | None = None,
) -> Mirror:
    """The worker w1 with the test's options, fetching with `fetcher`."""
    return Mirror(
        engine,
        fetcher=fetcher,
        store=files,
        options=OPTIONS,
        worker="w1",
        clock=clock,
        in_flight=in_flight,
    )


@pytest.fixture
def mirror(engine: Engine, files: LocalStore, clock: Clock) -> Iterator[Mirror]:
    fetcher = loopback_fetcher()
    yield mirror_of(engine, files, clock, fetcher)
    fetcher.close()

"""The mirror's own process beside each web worker: started and stopped by the runtime.

Fetching and hashing a gigabyte must not take the event loop's or the writer's time from the
callbacks, so the mirror runs in a process of its own, forked from the server like the writer
process. Several such processes (workers, replicas) share the queue through its leases. One
that dies is started again; stopped (SIGTERM), it abandons its fetches and gives their tasks
back.
"""

from __future__ import annotations

import asyncio
import logging
import logging.config
import multiprocessing
import secrets
import signal
from datetime import timedelta
from multiprocessing.process import BaseProcess

from app.config import Settings
from app.db import create_sync_engine
from app.fetching.fetcher import Fetcher
from app.logs import json_lines, log_config
from app.mirror.cos import CosKeys
from app.mirror.worker import Mirror, MirrorOptions
from app.storage.factory import open_store

log = logging.getLogger(__name__)
_PROCESSES = multiprocessing.get_context("forkserver")
# How often a dead mirror process is looked for, and how long a stopping one may take.
_WATCH_S = 2.0
_STOP_GRACE_S = 10.0
_POLL_S = 1.0


def mirror_options(settings: Settings) -> MirrorOptions:
    return MirrorOptions(
        concurrency=settings.fetch_concurrency,
        lease=timedelta(seconds=settings.fetch_lease_s),
        max_attempts=settings.fetch_max_attempts,
        retry_base=timedelta(seconds=settings.fetch_retry_base_s),
        retry_cap=timedelta(seconds=settings.fetch_retry_cap_s),
        poll_s=_POLL_S,
    )


def cos_keys(settings: Settings) -> CosKeys | None:
    if settings.cos_secret_id is None or settings.cos_secret_key is None:
        return None
    return CosKeys(
        settings.cos_secret_id.get_secret_value(), settings.cos_secret_key.get_secret_value()
    )


def serve(settings: Settings) -> None:
    """The mirror process's body: mirror until SIGTERM."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the web process decides when this one stops
    logging.config.dictConfig(log_config(json=json_lines(), level=settings.log_level))
    engine = create_sync_engine(settings, background=True)
    fetcher = Fetcher(
        admitted=settings.fetch_allow_networks,
        max_bytes=settings.fetch_max_bytes,
        connect_timeout_s=settings.fetch_connect_timeout_s,
        read_timeout_s=settings.fetch_read_timeout_s,
        total_timeout_s=settings.fetch_timeout_s,
    )
    store = open_store(settings)
    mirror = Mirror(
        engine,
        fetcher=fetcher,
        store=store,
        options=mirror_options(settings),
        worker=secrets.token_hex(8),
        cos=cos_keys(settings),
        cos_buckets=frozenset(settings.cos_buckets),
    )
    signal.signal(signal.SIGTERM, lambda *_: mirror.stop())
    try:
        mirror.run()
    finally:
        fetcher.close()
        engine.dispose()


class MirrorProcess:
    """Keeps one mirror process running until stopped."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._process: BaseProcess | None = None
        self._watching: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._spawn()
        self._watching = asyncio.create_task(self._watch())

    async def stop(self) -> None:
        if self._watching is not None:
            self._watching.cancel()
        process = self._process
        if process is None or not process.is_alive():
            return
        process.terminate()
        await asyncio.to_thread(process.join, _STOP_GRACE_S)
        if process.is_alive():
            log.error("the mirror process did not stop in time; killing it")
            process.kill()
            await asyncio.to_thread(process.join)

    async def _spawn(self) -> None:
        process = _PROCESSES.Process(
            target=serve, args=(self._settings,), name="stemhook-mirror", daemon=True
        )
        await asyncio.to_thread(process.start)
        self._process = process
        log.info("mirror process %s started", process.pid)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(_WATCH_S)
            if self._process is not None and not self._process.is_alive():
                log.warning(
                    "the mirror process ended (%s); starting it again", self._process.exitcode
                )
                try:
                    await self._spawn()
                except Exception:
                    log.exception("the mirror process could not be started")

"""The background process beside each web worker, started and stopped by the runtime: the
mirror (app/mirror/worker.py) when mirroring is on, the poller (app/polling/worker.py) when any
provider has credentials to be polled with, and the queue lister (app/polling/lister.py) when
STEMHOOK_CI_QUEUES names queues, each on a thread of its own.

Fetching and hashing a gigabyte, or waiting on a provider's API, must not take the event loop's
or the writer's time from the callbacks, so this work runs in a process of its own, forked from
the server like the writer process. Several such processes (workers, replicas) share the queues
through their leases. One that dies is started again, and so is one whose worker broke (it
exits); stopped (SIGTERM), each worker settles what ended, gives back what it can, and the
process exits. With nothing to do (mirroring off, no provider configured) it is not started.
"""

from __future__ import annotations

import asyncio
import logging
import logging.config
import secrets
import signal
import sys
import threading
from collections.abc import Callable
from datetime import timedelta
from multiprocessing.process import BaseProcess
from typing import Protocol

from sqlalchemy import Engine

from app.config import Settings
from app.db import create_sync_engine
from app.fetching.fetcher import Fetcher
from app.ingest.committer import Committer, committer_for
from app.ingest.in_flight import WritesInFlight
from app.logs import json_lines, log_config
from app.mirror.cos import CosKeys
from app.mirror.worker import Mirror, MirrorOptions
from app.polling.lister import ListOptions, QueueLister
from app.polling.listing import MOST_PER_PAGE
from app.polling.requests import MediaLabKeys, PollApis
from app.polling.worker import Poller, PollOptions
from app.processes import processes
from app.storage.factory import open_store

log = logging.getLogger(__name__)
# How often a dead background process is looked for, and how long a stopping one may take.
_WATCH_S = 2.0
_STOP_GRACE_S = 10.0
_POLL_S = 1.0
# A provider's answer about one job is a few kilobytes; a poll that takes longer than this is
# retried later (the providers' own callbacks give up after 15 s).
POLL_ANSWER_MAX_BYTES = 1024 * 1024
POLL_TIMEOUT_S = 15.0


class _Worker(Protocol):
    def run(self) -> None: ...

    def stop(self) -> None: ...


def needed(settings: Settings) -> bool:
    """Whether the background process has anything to do."""
    return settings.mirror or bool(settings.polled_providers)


def mirror_options(settings: Settings) -> MirrorOptions:
    return MirrorOptions(
        concurrency=settings.fetch_concurrency,
        lease=timedelta(seconds=settings.fetch_lease_s),
        max_attempts=settings.fetch_max_attempts,
        retry_base=timedelta(seconds=settings.fetch_retry_base_s),
        retry_cap=timedelta(seconds=settings.fetch_retry_cap_s),
        poll_s=_POLL_S,
    )


def poll_options(settings: Settings) -> PollOptions:
    return PollOptions(
        concurrency=settings.poll_concurrency,
        # Renewed at each round of the worker while it asks: a dead process's polls are taken
        # over once it has run out.
        lease=timedelta(seconds=settings.poll_lease_s),
        poll_after=settings.poll_after,
        write_timeout_s=settings.write_timeout_s,
        poll_s=_POLL_S,
    )


def list_options(settings: Settings) -> ListOptions:
    return ListOptions(
        every=settings.poll_after,
        lookback=settings.poll_give_up_after,
        # A page is one delivery: no more jobs than one may create.
        page_size=min(MOST_PER_PAGE, settings.max_jobs_per_delivery),
        # Longer than asking for a page (POLL_TIMEOUT_S) and storing it, each turn waited for.
        lease=timedelta(minutes=2),
        write_timeout_s=settings.write_timeout_s,
        poll_s=_POLL_S,
    )


def cos_keys(settings: Settings) -> CosKeys | None:
    if settings.cos_secret_id is None or settings.cos_secret_key is None:
        return None
    return CosKeys(
        settings.cos_secret_id.get_secret_value(), settings.cos_secret_key.get_secret_value()
    )


def poll_apis(settings: Settings) -> PollApis:
    media_lab = None
    if settings.media_lab_secret_id is not None and settings.media_lab_secret_key is not None:
        media_lab = MediaLabKeys(
            settings.media_lab_secret_id.get_secret_value(),
            settings.media_lab_secret_key.get_secret_value(),
        )
    return PollApis(
        suno_base=settings.suno_api_base,
        suno_key=settings.suno_api_key.get_secret_value() if settings.suno_api_key else None,
        media_lab_base=settings.media_lab_api_base,
        media_lab=media_lab,
        cos=cos_keys(settings),
        cos_buckets=frozenset(settings.cos_buckets),
        ci_queues=settings.ci_queues,
    )


def fetcher(settings: Settings, *, max_bytes: int, total_timeout_s: float) -> Fetcher:
    return Fetcher(
        admitted=settings.fetch_allow_networks,
        max_bytes=max_bytes,
        connect_timeout_s=settings.fetch_connect_timeout_s,
        read_timeout_s=settings.fetch_read_timeout_s,
        total_timeout_s=total_timeout_s,
    )


def serve(settings: Settings, in_flight: WritesInFlight) -> None:
    """The background process's body: its workers until SIGTERM, or until one breaks; they
    work between the web process's writes (`in_flight`)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the web process decides when this one stops
    logging.config.dictConfig(log_config(json=json_lines(), level=settings.log_level))
    engine = create_sync_engine(settings, background=True)
    closing: list[Callable[[], None]] = [engine.dispose]
    try:
        broke = _run(workers(settings, engine, closing, in_flight))
    finally:
        for close in reversed(closing):
            close()
    if broke:
        sys.exit(1)  # started again by the web process


def workers(
    settings: Settings,
    engine: Engine,
    closing: list[Callable[[], None]],
    in_flight: WritesInFlight | None = None,
) -> dict[str, _Worker]:
    """The workers the settings call for; what they hold is closed by `closing`, last first."""
    worker = secrets.token_hex(8)
    made: dict[str, _Worker] = {}
    if settings.mirror:
        files = fetcher(
            settings, max_bytes=settings.fetch_max_bytes, total_timeout_s=settings.fetch_timeout_s
        )
        closing.append(files.close)
        made["mirror"] = Mirror(
            engine,
            fetcher=files,
            store=open_store(settings),
            options=mirror_options(settings),
            worker=worker,
            cos=cos_keys(settings),
            cos_buckets=frozenset(settings.cos_buckets),
            in_flight=in_flight,
        )
    if settings.polled_providers:
        answers = fetcher(settings, max_bytes=POLL_ANSWER_MAX_BYTES, total_timeout_s=POLL_TIMEOUT_S)
        closing.append(answers.close)
        made["poller"] = Poller(
            engine,
            committer=_committer(engine, settings, closing),
            fetcher=answers,
            apis=poll_apis(settings),
            providers=settings.polled_providers,
            options=poll_options(settings),
            worker=worker,
            in_flight=in_flight,
        )
        if settings.ci_queues:  # listed with the COS keys, which CI's jobs are polled with
            made["lister"] = QueueLister(
                engine,
                committer=_committer(engine, settings, closing),
                fetcher=answers,
                apis=poll_apis(settings),
                queues=settings.ci_queues,
                options=list_options(settings),
                worker=worker,
            )
    return made


def _committer(engine: Engine, settings: Settings, closing: list[Callable[[], None]]) -> Committer:
    """A committer of a worker's own: one holds a connection between its transactions."""
    committer = committer_for(engine, settings)
    closing.append(committer.close)
    return committer


def _run(workers: dict[str, _Worker]) -> bool:
    """Each worker on a thread of its own until SIGTERM, or until one breaks (then all stop);
    whether one broke."""
    broke = threading.Event()

    def stop_all(*_: object) -> None:
        for worker in workers.values():
            worker.stop()

    def running(name: str, worker: _Worker) -> None:
        try:
            worker.run()
        except BaseException:
            log.exception("the %s broke; the background process ends", name)
            broke.set()
            stop_all()

    signal.signal(signal.SIGTERM, stop_all)
    threads = [
        threading.Thread(target=running, args=(name, worker), name=f"stemhook-{name}")
        for name, worker in workers.items()
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return broke.is_set()


class BackgroundProcess:
    """Keeps one background process running until stopped."""

    def __init__(self, settings: Settings, in_flight: WritesInFlight) -> None:
        self._settings = settings
        self._in_flight = in_flight
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
            log.error("the background process did not stop in time; killing it")
            process.kill()
            await asyncio.to_thread(process.join)

    async def _spawn(self) -> None:
        process = processes().Process(
            target=serve,
            args=(self._settings, self._in_flight),
            name="stemhook-background",
            daemon=True,
        )
        await asyncio.to_thread(process.start)
        self._process = process
        log.info("background process %s started", process.pid)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(_WATCH_S)
            if self._process is not None and not self._process.is_alive():
                log.warning(
                    "the background process ended (%s); starting it again",
                    self._process.exitcode,
                )
                try:
                    await self._spawn()
                except Exception:
                    log.exception("the background process could not be started")

"""The web process's side of the writer: submissions go to the writer process, commits come back.

Each web process starts one writer process (app/ingest/writer_process.py) and talks to it over
a socket pair. A submission is answered once the writer process has committed it. Without an
answer within STEMHOOK_WRITE_TIMEOUT_S it is StorageUnavailable (503), so that the provider
retries; the writer process then drops it unless it had already begun its batch (stored anyway:
the retry is answered as a duplicate, and nothing acknowledged is lost either way).

A submission counts as pending from its hand-over until the writer process answers it (its
sender may have been answered 503 long before): until then its body is held in this process's
buffers, the socket's or the writer process's read-ahead. Past STEMHOOK_MAX_PENDING_WRITES
submissions or STEMHOOK_MAX_PENDING_WRITE_BYTES of bodies, a submission is refused at once
(Overloaded, 503 with Retry-After) and nothing of it is kept: while the database stalls, the
memory held stays bounded however fast callbacks come, and it is given back as the writer process
answers.

If the writer process dies, everything waiting is answered 503, and so is everything submitted
until a new one runs: one is started within a second (and again every second until one starts).
A writer process that leaves a submission unanswered long after its deadline (its own watchdog
interrupts a transaction stalled past the timeout) is stuck some other way: it is killed, and
replaced the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from typing import cast

from app.config import Settings
from app.errors import Overloaded, StorageUnavailable
from app.ingest.committer import UNAVAILABLE, Answer, answer_from_wire
from app.ingest.frames import Unframer, frame
from app.ingest.in_flight import WritesInFlight
from app.ingest.intake import Receipt, Submission
from app.ingest.writer_process import serve
from app.processes import processes

log = logging.getLogger(__name__)

OVERLOADED = "too many callbacks are waiting for the database already; retry later"

_RESTART_AFTER_S = 1.0
# How often submissions past their deadline are answered 503 (the timeout's resolution), and a
# dead writer process is looked for.
_SWEEP_EVERY_S = 0.1


class Writer:
    def __init__(self, settings: Settings, in_flight: WritesInFlight | None = None) -> None:
        """`in_flight`: counts the writes awaited, for the background process (a count of
        this writer's own if not given)."""
        self._settings = settings
        self._in_flight = WritesInFlight() if in_flight is None else in_flight
        self._timeout_s = settings.write_timeout_s
        self._sequence = itertools.count()
        # Until the writer process answers, in submission order, hence in deadline order: an
        # entry past its deadline has been answered 503 already. With each, its body's size.
        self._waiting: dict[int, tuple[float, asyncio.Future[Receipt], int]] = {}
        self._max_pending = settings.max_pending_writes
        self._max_pending_bytes = settings.max_pending_write_bytes
        self._pending_bytes = 0
        self._stuck_after_s = 2 * settings.write_timeout_s + 2
        self._link: _Link | None = None
        self._process: BaseProcess | None = None
        self._started_at = float("-inf")
        self._restarting: asyncio.Task[None] | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._stopping = False

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self._spawn()
        self._sweep()

    async def stop(self) -> None:
        """Let the writer process commit and answer what it was sent, then stop it."""
        self._stopping = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._restarting is not None:
            await self._restarting
        link, process = self._link, self._process
        if link is not None and not link.lost:
            link.finish()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(link.closed), self._timeout_s * 2)
        if process is not None:
            await _end(process, grace_s=self._timeout_s)
        self._fail_waiting()

    @property
    def process_id(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def alive(self) -> bool:
        link, process = self._link, self._process
        return link is not None and not link.lost and process is not None and process.is_alive()

    async def write(self, submission: Submission) -> Receipt:
        """Returns once committed; raises StorageUnavailable, or BadSignature (Suno)."""
        link = self._link
        if link is None or link.lost or self._stopping:
            raise StorageUnavailable(UNAVAILABLE)
        sequence = next(self._sequence)
        deadline = time.monotonic() + self._timeout_s
        data = frame((sequence, deadline, submission.to_wire()))
        # The frame is what is held until answered: the body and the kept headers with it.
        size = len(data)
        # One submission is always taken when none is pending, whatever its size.
        if len(self._waiting) >= self._max_pending or (
            self._pending_bytes + size > self._max_pending_bytes and self._waiting
        ):
            raise Overloaded(OVERLOADED)
        future: asyncio.Future[Receipt] = self._loop.create_future()
        self._waiting[sequence] = (deadline, future, size)
        self._pending_bytes += size
        link.send(data)
        try:
            with self._in_flight.one():
                return await future
        finally:
            # A 503 is the future's exception, whose traceback holds this frame: holding the
            # future too would make a cycle (with the body) that only a full collection frees.
            del future

    async def _spawn(self) -> None:
        ours, theirs = socket.socketpair()
        process = processes().Process(
            target=serve, args=(theirs, self._settings), name="stemhook-writer", daemon=True
        )
        self._started_at = time.monotonic()
        try:
            await asyncio.to_thread(process.start)
        finally:
            theirs.close()  # held only by the writer process: its end closes when it dies
        self._process = process
        _, self._link = await self._loop.create_unix_connection(
            lambda: _Link(self._loop, self._settle, self._lost), sock=ours
        )
        log.info("writer process %s started", process.pid)

    def _needs_restart(self) -> bool:
        return (
            not self._stopping
            and (self._link is None or self._link.lost)
            and (self._restarting is None or self._restarting.done())
            and time.monotonic() - self._started_at >= _RESTART_AFTER_S
        )

    async def _restart(self) -> None:
        if self._process is not None:
            await _end(self._process, grace_s=0)
        log.warning("starting a new writer process")
        try:
            await self._spawn()
        except Exception:
            log.exception("the writer process could not be started; trying again in a second")

    def _settle(self, sequence: int, answer: Answer) -> None:
        waiting = self._waiting.pop(sequence, None)
        if waiting is None:
            return
        _, future, size = waiting
        self._pending_bytes -= size
        if future.done():  # answered 503 already
            return
        if isinstance(answer, BaseException):
            future.set_exception(answer)
        else:
            future.set_result(answer)

    def _lost(self, link: _Link) -> None:
        if link is self._link and not self._stopping:
            log.error("the writer process stopped; answering 503 until a new one runs")
        self._fail_waiting()

    def _sweep(self) -> None:
        now = time.monotonic()
        for deadline, future, _ in self._waiting.values():
            if deadline > now:
                break
            if not future.done():
                future.set_exception(StorageUnavailable(UNAVAILABLE))
        oldest = next(iter(self._waiting.values()), None)
        if oldest is not None and now > oldest[0] + self._stuck_after_s and self.alive:
            log.error("the writer process left a submission unanswered; replacing it")
            assert self._process is not None
            self._process.kill()
        if self._needs_restart():
            self._restarting = self._loop.create_task(self._restart())
        self._sweeper = self._loop.call_later(_SWEEP_EVERY_S, self._sweep)

    def _fail_waiting(self) -> None:
        waiting, self._waiting = self._waiting, {}
        self._pending_bytes = 0
        for _, future, _ in waiting.values():
            if not future.done():
                future.set_exception(StorageUnavailable(UNAVAILABLE))


async def _end(process: BaseProcess, *, grace_s: float) -> None:
    await asyncio.to_thread(process.join, grace_s)
    if process.is_alive():
        log.error("the writer process did not stop in time; killing it")
        process.kill()
        await asyncio.to_thread(process.join)


class _Link(asyncio.Protocol):
    """The socket to one writer process: submissions out, answers in."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        settle: Callable[[int, Answer], None],
        lost: Callable[[_Link], None],
    ) -> None:
        self._loop = loop
        self._outgoing: list[bytes] = []
        self._settle = settle
        self._on_lost = lost
        self._unframer = Unframer()
        self._transport: asyncio.Transport | None = None
        self.lost = False
        self.closed: asyncio.Future[None] = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        for answers in self._unframer.feed(data):
            for sequence, answer in answers:
                self._settle(sequence, answer_from_wire(answer))

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self.closed.done():
            self.closed.set_result(None)
        self._on_lost(self)

    def send(self, data: bytes) -> None:
        # The submissions of one turn of the event loop go in one write: one system call and one
        # wake-up of the writer process for all of them.
        if not self._outgoing:
            self._loop.call_soon(self._flush)
        self._outgoing.append(data)

    def _flush(self) -> None:
        assert self._transport is not None
        if self._outgoing:  # finish() may have flushed already
            self._transport.write(b"".join(self._outgoing))
            self._outgoing.clear()

    def finish(self) -> None:
        """No more submissions: the writer process answers what it has, then stops."""
        assert self._transport is not None
        if self._outgoing:
            self._flush()
        self._transport.write_eof()

"""Polling in real server processes: a poll in flight when its background process is killed is
made again once its lease has run out, by the background process started after it (respawned by
its web process, or a server started anew), and the job ends right; the background processes of
two servers on one PostgreSQL database never ask about one job twice, let alone at once.

Everything asserted is a recorded fact: the requests the fake provider saw (which job, which
process sent it, when it came), the lease the database held, what the database and the API hold
at the end. Times only bound how long the test waits for a condition."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, func, select, update

from app import models
from app.providers.model import Provider
from tests.conftest import Backend
from tests.fetching.servers import Handler
from tests.mirror.conftest import Clock
from tests.polling.conftest import SUNO_KEY, FakeProviders, answer_of, expect, replying, watch_of
from tests.polling.senders import sender_pid
from tests.reliability.support import AUTH, figures, server_env
from tests.servers import Server, server_process

pytestmark = pytest.mark.servers

SUNO = Provider.SUNO
SUCCESS = "record_info_separate_vocal.json"
# A dead process's polls are taken over this long after its last renewal.
LEASE_S = 10
# Far above what a quiet machine needs (a lease and a second or two); polled, never slept through.
PATIENCE_S = 120
_STARTED = re.compile(r"background process (\d+) started")


@dataclass(frozen=True)
class Request:
    """A request the fake provider saw: about which job, from which process, and when it came
    (epoch seconds)."""

    job_id: str
    sender: int | None
    at: float


class Recorded:
    """Routes of the fake Suno API that note each request before answering it."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self._lock = threading.Lock()

    def noting(self, route: Callable[[Handler], None]) -> Callable[[Handler], None]:
        def noted(handler: Handler) -> None:
            sender = sender_pid(handler.client_address[1], handler.server.port)
            with self._lock:
                self.requests.append(Request(handler.query("taskId"), sender, time.time()))
            route(handler)

        return noted


def poll_env(backend: Backend, providers: FakeProviders, **settings: object) -> dict[str, str]:
    return server_env(
        backend.url,
        suno_api_key=SUNO_KEY,
        suno_api_base=providers.origin,
        fetch_allow_networks="127.0.0.1/32",
        poll_lease_s=LEASE_S,
        **settings,
    )


def background_pids(server: Server) -> list[int]:
    """The background processes the server started, first first (app/background.py logs each)."""
    return [int(pid) for pid in _STARTED.findall(server.log.read_text())]


def wait_until(condition: Callable[[], bool], what: str, server: Server) -> None:
    deadline = time.monotonic() + PATIENCE_S
    while not condition():
        assert time.monotonic() < deadline, f"still not {what}:\n{server.log.read_text()}"
        time.sleep(0.05)


def dead(pid: int) -> bool:
    """Ended: gone, or a zombie its parent has not reaped yet."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@contextmanager
def fake_suno(replies: dict[str, list[Callable[[Handler], None]]]) -> Iterator[FakeProviders]:
    providers = FakeProviders(Clock(), suno=replies)
    try:
        yield providers
    finally:
        providers.stop()


@pytest.mark.parametrize("restart", ["background process", "server"])
def test_a_poll_killed_in_flight_is_made_again_after_its_lease_and_the_job_ends_right(
    backend: Backend, engine: Engine, tmp_path: Path, restart: str
) -> None:
    """The provider holds the first request unanswered; its background process is SIGKILLed
    meanwhile (alone, and its web process starts another; or with its whole server, and a new
    server is started). The request is made again, once the dead process's lease has run out,
    and answered SUCCESS."""
    recorded, asked = Recorded(), threading.Event()

    def holding(handler: Handler) -> None:
        asked.set()
        Handler.never_answer(handler)

    succeeded = replying(answer_of(SUNO, SUCCESS, "k-1"))
    replies = {"k-1": [recorded.noting(holding), recorded.noting(succeeded)]}
    with fake_suno(replies) as providers, ExitStack() as servers:
        env = poll_env(backend, providers)
        server = servers.enter_context(server_process(env, tmp_path))
        with httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as http:
            registered = http.put("/v1/jobs/suno/k-1/expect", json={"poll_after_s": 1})
            assert registered.status_code == 201
        assert asked.wait(PATIENCE_S), server.log.read_text()
        (killed,) = background_pids(server)
        if restart == "server":
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait()
        else:
            os.kill(killed, signal.SIGKILL)
        wait_until(lambda: dead(killed), "dead", server)
        lease = watch_of(engine, "k-1")  # the dead process's lease, renewed no more
        if restart == "server":
            servers.close()
            server = servers.enter_context(server_process(env, tmp_path))
        with httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as http:

            def ended() -> bool:
                # The poll is counted on its watch by the poller's next transaction, after the
                # one that stored its answer and finished the job.
                job = http.get("/v1/jobs/suno/k-1").json()
                return bool(job["state"] == "succeeded" and job["watch"]["polls"] > 0)

            wait_until(ended, "succeeded, its poll counted", server)
            job = http.get("/v1/jobs/suno/k-1").json()
        respawned = background_pids(server)[-1]

    first, second = recorded.requests
    assert (first.job_id, second.job_id) == ("k-1", "k-1")
    assert first.sender == killed
    assert second.sender == respawned != killed
    assert lease["leased_by"] is not None
    assert second.at >= lease["leased_until"].timestamp()
    ended = watch_of(engine, "k-1")
    assert (ended["leased_by"], ended["leased_until"], ended["attempts"]) == (None, None, 2)
    assert (job["state"], job["deliveries"]) == ("succeeded", 1)
    watch = {key: job["watch"][key] for key in ("status", "polls", "last_error")}
    assert watch == {"status": "done", "polls": 1, "last_error": None}


@pytest.mark.postgres_only
def test_the_background_processes_of_two_servers_never_poll_one_job_twice(
    backend: Backend, engine: Engine, tmp_path: Path
) -> None:
    """Two servers of two workers each (four background processes, four polls in flight each)
    on 120 jobs made due at once. The provider holds the first six requests until 30 others
    were answered (or five seconds passed), so that other processes claim while those polls are
    in flight. Every job is asked about exactly once, and by more than one process."""
    jobs = [f"p-{n}" for n in range(120)]
    recorded, answered = Recorded(), threading.Condition()
    counts = {"held": 0, "answered": 0}

    def held_or_answered(job_id: str) -> Callable[[Handler], None]:
        def route(handler: Handler) -> None:
            with answered:
                hold = counts["held"] < 6
                counts["held"] += hold
                if hold:  # bounded well inside a poll's 15 s: never timed out and made again
                    answered.wait_for(lambda: counts["answered"] >= 30, timeout=5)
            replying(answer_of(SUNO, SUCCESS, job_id))(handler)
            with answered:
                counts["answered"] += 1
                answered.notify_all()

        return route

    now = datetime.now(UTC)
    for job_id in jobs:  # due in ten minutes: not before both servers are up
        expect(engine, SUNO, job_id, at=now)
    replies = {job_id: [recorded.noting(held_or_answered(job_id))] for job_id in jobs}
    with fake_suno(replies) as providers, ExitStack() as running:
        env = poll_env(backend, providers)
        servers = [
            running.enter_context(server_process(env, tmp_path, workers=2)) for _ in range(2)
        ]
        for server in servers:  # each worker starts its own once it is up
            wait_until(lambda s=server: len(background_pids(s)) == 2, "both started", server)
        pollers = {pid for server in servers for pid in background_pids(server)}
        with engine.begin() as connection:  # all due at once, as POST .../poll makes one
            connection.execute(update(models.JobWatch).values(run_after=datetime.now(UTC)))
        wait_until(lambda: _done(engine) == len(jobs), "all polled", servers[0])

    asked = Counter(request.job_id for request in recorded.requests)
    senders = Counter(request.sender for request in recorded.requests)
    figures(
        "polling with two servers on PostgreSQL",
        jobs=len(jobs),
        requests=sum(asked.values()),
        requests_by_process=sorted(senders.values(), reverse=True),
    )
    assert asked == Counter(dict.fromkeys(jobs, 1))
    assert set(senders) <= pollers
    assert len(senders) >= 2
    with engine.connect() as connection:
        job = models.Job
        states = connection.execute(
            select(job.state, job.deliveries, func.count()).group_by(job.state, job.deliveries)
        ).all()
    assert [tuple(row) for row in states] == [("succeeded", 1, len(jobs))]


def _done(engine: Engine) -> int:
    watch = models.JobWatch
    with engine.connect() as connection:
        done = connection.scalar(
            select(func.count()).select_from(watch).where(watch.status == "done")
        )
    return int(done or 0)

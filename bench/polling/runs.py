"""The measurements of bench.polling, per backend, against `stemhook serve` (1 worker) on a fresh
database (SQLite at synchronous=FULL, or PostgreSQL), polling Suno at the fake provider of
bench/polling/provider.py on 127.0.0.1 (fetches admitted to 127.0.0.1/32 only), every other
setting at its default.

- Registering: `plan.watches` Suno jobs through PUT /v1/jobs/suno/<id>/expect, from four clients
  at once, each first due a day later.
- Polls per second: every open watch made due at once (one UPDATE: what POST .../poll does for
  one job); the polls made per second (the watches' `polls`, counted as each is settled) from
  the first one on, for a window or until each watch was polled once, with the CPU time the
  background process, the rest of stemhook, PostgreSQL (when it runs on this machine) and the
  fake provider spent per poll; once per STEMHOOK_POLL_CONCURRENCY asked, each on a server of
  its own over the same database.
- Ingest beside polls (on the first server): bench/beside.py's rounds of saturating runs, the
  background busy while every watch is due and polled ("polls due") and idle while none is
  ("none due"); then one paced run of each kind at half the "none due" median rate, latency
  counted from when each request was due.

The provider answers PENDING: each poll is stored as a delivery that changes nothing and its
watch is due again 15-30 s later, so with all of them due the poller never runs dry.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import Engine, create_engine, func, select, update
from sqlalchemy.exc import OperationalError

from app import models
from app.db import sync_url
from app.polling.watches import WatchStatus
from bench import beside
from bench.beside import Beside, Kinds, Rounds
from bench.ingest import lua, wrk
from bench.ingest.databases import PG_SERVER, Backend, Scratch, fresh
from bench.ingest.hiccups import Machine, MachineWatch
from bench.ingest.processes import PostgresCpu, group_cpu_s
from bench.ingest.servers import Server, free_port, serving, stemhook_command
from bench.stand_ins import StandIn

API_TOKEN = secrets.token_hex(16)
# The fake provider checks no key; stemhook polls only a provider that has one.
SUNO_KEY = "bench-polling-key"
REGISTERING_CLIENTS = 4
# Far beyond what a run needs on a quiet machine: one this slow has stalled.
PATIENCE_S = 300
KINDS = Kinds(busy="polls due", idle="none due")
HALF = 0.5
_OPEN = (WatchStatus.WAITING.value, WatchStatus.POLLING.value)
_LOOK_S = 0.25


@dataclass(frozen=True)
class Plan:
    watches: int  # jobs registered, and polled once they are due
    concurrencies: tuple[int, ...]  # of the polls-per-second runs; the first one's server ingests
    window_s: float  # the longest a polls-per-second run counts
    ingest: Rounds  # of saturating runs beside polls; the paced runs post the same family
    paced_s: float
    paced_connections: int


@dataclass(frozen=True)
class PollRate:
    concurrency: int
    polls: int
    seconds: float
    background_cpu_s: float
    rest_cpu_s: float  # stemhook's other processes: web process, writer, forkserver
    provider_cpu_s: float
    database_cpu_s: float | None  # PostgreSQL on this machine: its processes but other databases'

    @property
    def rate(self) -> float:
        return self.polls / self.seconds

    def us_per_poll(self, cpu_s: float) -> float:
        return 1e6 * cpu_s / self.polls


@dataclass(frozen=True)
class Paced:
    kind: str
    asked: float  # req/s
    load: wrk.Load
    machine: Machine
    polls: int


@dataclass(frozen=True)
class Outcome:
    backend: Backend
    registered_s: float
    rates: tuple[PollRate, ...]
    ingest: Beside  # the polls are its `done`
    paced: tuple[Paced, ...]


_DEADLOCK_TRIES = 5


class Watches:
    """The scratch database's watches: made due or not, and their polls counted."""

    def __init__(self, scratch: Scratch) -> None:
        self._engine: Engine = create_engine(sync_url(scratch.url))

    def close(self) -> None:
        self._engine.dispose()

    def polls(self) -> int:
        with self._engine.connect() as connection:
            return int(connection.scalar(select(func.coalesce(func.sum(_WATCH.c.polls), 0))))

    def all_due(self) -> None:
        """Every open watch due now, and polled before this returns."""
        before = self.polls()
        self._due_at(datetime.now(UTC), held_too=True)
        _until(lambda: self.polls() > before, "the poller polls")

    def none_due(self) -> None:
        """No open watch due for a day, none held: the polls in flight settled (each due again
        after its backoff, so put off once more)."""
        self._due_at(datetime.now(UTC) + timedelta(days=1), held_too=False)
        _until(lambda: self._held() == 0, "the polls in flight settled")
        self._due_at(datetime.now(UTC) + timedelta(days=1), held_too=False)

    def _due_at(self, when: datetime, *, held_too: bool) -> None:
        """Every open watch (but those held, unless `held_too`) due at `when`. The running
        poller updates watches meanwhile, in its own order: on PostgreSQL the one UPDATE of them
        all may meet it in a deadlock, and is tried again."""
        c = _WATCH.c
        chosen = update(_WATCH).where(c.status.in_(_OPEN))
        if not held_too:
            chosen = chosen.where(c.leased_by.is_(None))
        for attempt in range(_DEADLOCK_TRIES):
            try:
                with self._engine.begin() as connection:
                    connection.execute(chosen.values(run_after=when))
                return
            except OperationalError as error:
                if "deadlock detected" not in str(error) or attempt == _DEADLOCK_TRIES - 1:
                    raise

    def _held(self) -> int:
        with self._engine.connect() as connection:
            held = connection.scalar(
                select(func.count()).select_from(_WATCH).where(_WATCH.c.leased_by.is_not(None))
            )
            return int(held or 0)


_WATCH = models.JobWatch.__table__


def measure(
    backend: Backend, plan: Plan, provider: StandIn, workdir: Path, log: Callable[[str], None]
) -> Outcome:
    scratch = fresh(backend, "stemhook_bench_polling", workdir=workdir, postgres_server=PG_SERVER)
    first, *others = plan.concurrencies
    try:
        with (
            _stemhook(scratch, provider, first, workdir) as server,
            closing(Watches(scratch)) as watches,
        ):
            registered_s = _register(server, plan.watches)
            log(f"{backend.label}: {plan.watches:,} jobs registered in {registered_s:.1f} s")
            rates = [_poll_rate(server, scratch, watches, provider, plan, first, log)]
            ingest = _ingest_rounds(server, watches, plan, workdir, log, backend)
            paced = _paced(server, watches, plan, workdir, ingest, log, backend)
        for concurrency in others:
            with (
                _stemhook(scratch, provider, concurrency, workdir) as server,
                closing(Watches(scratch)) as watches,
            ):
                rates.append(_poll_rate(server, scratch, watches, provider, plan, concurrency, log))
    finally:
        scratch.drop()
    return Outcome(backend, registered_s, tuple(rates), ingest, tuple(paced))


def rate_line(r: PollRate) -> str:
    return (
        f"STEMHOOK_POLL_CONCURRENCY={r.concurrency}: {r.polls:,} polls in {r.seconds:.1f} s,"
        f" {r.rate:,.1f} polls/s; CPU µs/poll: background process"
        f" {r.us_per_poll(r.background_cpu_s):,.0f}, rest of stemhook"
        f" {r.us_per_poll(r.rest_cpu_s):,.0f}, PostgreSQL "
        + ("—" if r.database_cpu_s is None else f"{r.us_per_poll(r.database_cpu_s):,.0f}")
        + f", fake provider {r.us_per_poll(r.provider_cpu_s):,.0f}"
    )


@contextmanager
def _stemhook(
    scratch: Scratch, provider: StandIn, concurrency: int, workdir: Path
) -> Iterator[Server]:
    env = {
        "STEMHOOK_DATABASE_URL": scratch.url,
        "STEMHOOK_SQLITE_SYNCHRONOUS": "FULL",
        "STEMHOOK_API_TOKENS": API_TOKEN,
        "STEMHOOK_SUNO_API_KEY": SUNO_KEY,
        "STEMHOOK_SUNO_API_BASE": provider.origin,
        "STEMHOOK_FETCH_ALLOW_NETWORKS": "127.0.0.1/32",
        "STEMHOOK_POLL_CONCURRENCY": str(concurrency),
    }
    port = free_port()
    name = f"stemhook-polling-{scratch.backend}-c{concurrency}"
    with serving(
        name, stemhook_command(port, 1), port=port, workers=1, workdir=workdir, env=env
    ) as server:
        yield server


def _register(server: Server, count: int) -> float:
    """Seconds to register `count` jobs, each first due a day later."""
    ids = [f"poll-{number}" for number in range(count)]

    def register(share: list[str]) -> None:
        auth = {"Authorization": f"Bearer {API_TOKEN}"}
        with httpx.Client(base_url=server.url, headers=auth, timeout=30) as http:
            for job_id in share:
                answer = http.put(f"/v1/jobs/suno/{job_id}/expect", json={"poll_after_s": 86400})
                if answer.status_code != 201:
                    raise RuntimeError(f"registering {job_id}: {answer.status_code} {answer.text}")

    started = time.perf_counter()
    with ThreadPoolExecutor(REGISTERING_CLIENTS) as pool:
        shares = [ids[n::REGISTERING_CLIENTS] for n in range(REGISTERING_CLIENTS)]
        list(pool.map(register, shares))
    return time.perf_counter() - started


def _poll_rate(
    server: Server,
    scratch: Scratch,
    watches: Watches,
    provider: StandIn,
    plan: Plan,
    concurrency: int,
    log: Callable[[str], None],
) -> PollRate:
    """Polls per second with every open watch due; none due after."""
    background = server.background_pid()
    before = watches.polls()
    watches.all_due()
    first, started = watches.polls(), time.perf_counter()
    cpu, provider_cpu = group_cpu_s(server.pid), provider.cpu_s()
    database = PostgresCpu(scratch) if scratch.backend is Backend.POSTGRESQL else None
    polls = first
    while time.perf_counter() - started < plan.window_s and polls - before < plan.watches:
        time.sleep(_LOOK_S)
        polls = watches.polls()
    seconds = time.perf_counter() - started
    spent = {pid: used - cpu.get(pid, 0.0) for pid, used in group_cpu_s(server.pid).items()}
    on_database = database.spent() if database else None
    rate = PollRate(
        concurrency,
        polls - first,
        seconds,
        background_cpu_s=spent[background],
        rest_cpu_s=sum(spent.values()) - spent[background],
        provider_cpu_s=provider.cpu_s() - provider_cpu,
        database_cpu_s=None if on_database is None else on_database[0],
    )
    log(f"{scratch.backend.label}: {rate_line(rate)}")
    watches.none_due()
    return rate


def _ingest_rounds(
    server: Server,
    watches: Watches,
    plan: Plan,
    workdir: Path,
    log: Callable[[str], None],
    backend: Backend,
) -> Beside:
    @contextmanager
    def during(kind: str) -> Iterator[None]:
        _set(watches, kind)
        yield

    return beside.measure(
        server.url,
        plan.ingest,
        KINDS,
        workdir,
        during=during,
        done=watches.polls,
        log=lambda message: log(f"{backend.label} {message}"),
    )


def _paced(
    server: Server,
    watches: Watches,
    plan: Plan,
    workdir: Path,
    ingest: Beside,
    log: Callable[[str], None],
    backend: Backend,
) -> list[Paced]:
    family = plan.ingest.family
    script = workdir / f"{family.provider}-{lua.Mode.PACED}.lua"
    script.write_text(lua.script(family, lua.Mode.PACED))
    rate = HALF * ingest.idle_rate()
    paced = []
    for kind in (KINDS.busy, KINDS.idle_a):
        _set(watches, kind)
        invocation = wrk.paced(
            server.url,
            family.path,
            script,
            duration_s=plan.paced_s,
            connections=plan.paced_connections,
            rate=rate,
        )
        before = watches.polls()
        with MachineWatch(workdir) as watch:
            load = wrk.run(invocation)
        assert load.paced is not None and watch.machine is not None
        paced.append(Paced(kind, rate, load, watch.machine, watches.polls() - before))
        log(
            f"{backend.label} paced {kind:13} asked {rate:6,.0f} got {load.rate:6,.0f} req/s"
            f"  p50 {load.paced.p50_ms:6.2f}  p99 {load.paced.p99_ms:6.2f} ms (from due time);"
            f" {paced[-1].polls / load.duration_s:6.1f} polls/s meanwhile"
        )
    return paced


def _set(watches: Watches, kind: str) -> None:
    if kind == KINDS.busy:
        watches.all_due()
    else:
        watches.none_due()


def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + PATIENCE_S
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"waited {PATIENCE_S} s for {what}")
        time.sleep(0.05)

"""The benchmark's phases: ingest beside the references, half-rate latency, growth, profile.

Figures that are compared are measured side by side: within a round every target (bare
reference, parse reference, stemhook on each backend) gets one run, one after another, and
the next round starts with the next target. Absolute rates drift on a shared machine; a ratio
taken within one round drifts far less, and the report takes the median over rounds.

Every stemhook server runs on a database of its own and is checked after it stopped: every
request wrk saw acknowledged must be stored as an accepted delivery, each one a new job.
"""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from bench.ingest import lua, wrk
from bench.ingest.databases import Backend, Commits, Mark, Scratch, Stored, copy_of, fresh
from bench.ingest.hiccups import Machine, MachineWatch
from bench.ingest.payloads import Family
from bench.ingest.processes import PostgresCpu, group_cpu_s
from bench.ingest.profile import Profile, record, render, summarize
from bench.ingest.servers import (
    Server,
    free_port,
    reference_command,
    serving,
    stemhook_command,
)
from bench.query_data import PostgresTarget, SqliteTarget, prepare

HALF = 0.5
# The database of the paced control: SQLite on a tmpfs, where a sync costs nothing. What stemhook
# does at half rate when the disk's flush does not stall; not durable, never a target figure.
TMPFS = "tmpfs"


class Undurable(Exception):
    """Fewer deliveries stored than acknowledged, or not each as a new job."""


@dataclass(frozen=True)
class Plan:
    families: tuple[Family, ...]
    backends: tuple[Backend, ...]
    workers: tuple[int, ...]
    rounds: int
    duration_s: float
    # Longer than a saturating run: a p99 needs rare events (a disk stall here: up to ~10 a
    # minute) sampled at their rate, not a window that holds one or none of them.
    paced_s: float
    paced_connections: int
    warmup_s: float
    # Saturating runs go at each of these wrk connection counts, and a target's rate in a round
    # is its best: a server that batches needs more requests in flight to be saturated than one
    # that answers each on its own. Growth and the profile use the last, where stemhook is
    # busiest (the paced phase has paced_connections of its own).
    connections: tuple[int, ...]
    growth_families: tuple[Family, ...]  # empty: no growth phase
    growth_jobs: int
    parsers: bool
    profile: Family | None
    profile_s: int
    sqlite_fill: Path
    postgres_fill: str
    generator_idle: bool = False  # saturating wrk at SCHED_IDLE (--generator-idle)
    # STEMHOOK_* settings of the stemhook servers beyond their defaults (--setting), for A/B runs.
    settings: tuple[tuple[str, str], ...] = ()

    @property
    def postgres_server(self) -> str:
        return self.postgres_fill.rsplit("/", 1)[0]


@dataclass(frozen=True)
class Cpu:
    """CPU time per request answered during one saturating run, in µs: each of the server's
    processes (busiest first; a PostgreSQL server's own processes are not among them) and wrk.

    stemhook on PostgreSQL, when the server runs on this machine: `database` is what the
    PostgreSQL server's processes used (its postmaster and every process it started: backends,
    WAL writer, checkpointer ...; one that ended during the run is not counted), leaving out
    its backends of other databases, which used `elsewhere` (other work on a shared server)."""

    processes: tuple[float, ...]
    wrk: float
    database: float | None = None
    elsewhere: float | None = None

    @property
    def server(self) -> float:
        return sum(self.processes)


@dataclass(frozen=True)
class Run:
    phase: str  # "ingest", "paced" or "growth"
    target: str  # "bare", "parse" or "stemhook"
    backend: str  # "" for the references
    database: str  # "empty", or the jobs it held
    family: str
    workers: int
    round: int
    connections: int
    load: wrk.Load
    cpu: Cpu | None = None
    machine: Machine | None = None  # paced runs: what the machine itself did meanwhile
    # Paced stemhook runs: the commits it logged as slow meanwhile (ms), the disk's or the
    # database server's stalls rather than its own.
    slow_commits_ms: tuple[float, ...] = ()
    asked: float = 0.0  # paced runs: the rate asked for, req/s


def peaks(runs: Iterable[Run]) -> list[Run]:
    """Each target's saturated run of each round: its fastest over the connection counts tried
    (runs at one connection count come through as they are)."""
    best: dict[tuple[str, str, str, str, str, int, int], Run] = {}
    for run in runs:
        key = (run.phase, run.target, run.backend, run.database, run.family, run.workers, run.round)
        if key not in best or run.load.rate > best[key].load.rate:
            best[key] = run
    return list(best.values())


@dataclass
class Ledger:
    """What one stemhook server acknowledged, and what its database holds afterwards."""

    server: str
    phase: str
    workers: int
    scratch: Scratch
    mark: Mark
    counted_from: Commits | None  # PostgreSQL: its counters before the server started
    acknowledged: int = 0
    stored: Stored | None = None
    commits: Commits | None = None  # PostgreSQL: what they grew by while it ran


@dataclass(frozen=True)
class Target:
    name: str
    server: Server
    path: str
    backend: str = ""
    database: str = "empty"
    ledger: Ledger | None = None

    @property
    def label(self) -> str:
        where = f"/{self.backend}" if self.backend else ""
        return f"{self.name}{where}" + ("" if self.database == "empty" else f" ({self.database})")


@dataclass
class Bench:
    plan: Plan
    workdir: Path
    memory: Path | None  # a directory on a tmpfs for the paced control (TMPFS); None: no control
    runs: list[Run] = field(default_factory=list)
    ledgers: list[Ledger] = field(default_factory=list)
    profile: Profile | None = None
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.scripts: dict[tuple[str, lua.Mode], Path] = {}
        profiled = () if self.plan.profile is None else (self.plan.profile,)
        for family in {*self.plan.families, *self.plan.growth_families, *profiled}:
            for mode in lua.Mode:
                path = self.workdir / f"{family.provider}-{mode}.lua"
                path.write_text(lua.script(family, mode))
                self.scripts[family.provider, mode] = path

    def log(self, message: str) -> None:
        elapsed = time.monotonic() - self.started
        print(f"[{elapsed / 60:4.1f} min] {message}", flush=True)

    # --- phases ---------------------------------------------------------------------------

    def ingest(self, workers: int) -> None:
        """All families at this worker count: references and stemhook side by side."""
        scratches = [
            fresh(
                b,
                f"stemhook_ingest_{b}_w{workers}",
                workdir=self.workdir,
                postgres_server=self.plan.postgres_server,
            )
            for b in self.plan.backends
        ]
        with ExitStack() as stack:
            port = free_port()
            reference = stack.enter_context(
                serving(
                    f"reference-w{workers}",
                    reference_command(port, workers),
                    port=port,
                    workers=workers,
                    workdir=self.workdir,
                    env={},
                )
            )
            hooks = [
                stack.enter_context(
                    self.stemhook(
                        scratch, workers, label=f"{scratch.backend}-w{workers}", phase="ingest"
                    )
                )
                for scratch in scratches
            ]
            control = self._control(stack, workers, scratches)
            self.log(f"{workers} worker(s): servers up")
            for family in self.plan.families:
                targets = [Target("bare", reference, "/bare"), Target("parse", reference, "/parse")]
                targets += [replace(hook, path=family.path) for hook in hooks]
                self.rounds(
                    targets, family, phase="ingest", workers=workers, levels=self.plan.connections
                )
                for hook in targets[2:]:
                    self.paced(hook, family, workers=workers)
                if control is not None:
                    beside = next(hook for hook in targets[2:] if hook.backend == Backend.SQLITE)
                    in_memory = replace(control, path=family.path)
                    self.load(
                        in_memory, family, self.plan.warmup_s, connections=self.plan.connections[-1]
                    )
                    self.paced(in_memory, family, workers=workers, rate_of=beside)
        for scratch in scratches:
            scratch.drop()

    def _control(self, stack: ExitStack, workers: int, scratches: list[Scratch]) -> Target | None:
        """stemhook on SQLite in memory (TMPFS), with 1 worker beside durable SQLite: paced at
        that target's rate, it shows how much of its latency is the disk's."""
        if self.memory is None or workers != 1:
            return None
        if not any(scratch.backend is Backend.SQLITE for scratch in scratches):
            return None
        scratch = fresh(
            Backend.SQLITE,
            "stemhook_ingest_tmpfs",
            workdir=self.memory,
            postgres_server=self.plan.postgres_server,
        )
        stack.callback(scratch.drop)
        hook = stack.enter_context(
            self.stemhook(scratch, workers, label=f"{TMPFS}-w{workers}", phase="ingest")
        )
        return replace(hook, database=TMPFS)

    def growth(self, backend: Backend) -> None:
        """The same load on an empty database and on a copy of the 1M-job fill, side by side."""
        plan = self.plan
        fill: SqliteTarget | PostgresTarget = (
            SqliteTarget(plan.sqlite_fill)
            if backend is Backend.SQLITE
            else PostgresTarget(plan.postgres_fill)
        )
        self.log(f"growth/{backend}: preparing {plan.growth_jobs:,} jobs in {fill.url} ...")
        self.log(f"growth/{backend}: {prepare(fill, plan.growth_jobs, refill=False)}; copying")
        server = plan.postgres_server
        databases = {
            "empty": fresh(
                backend, "stemhook_ingest_empty", workdir=self.workdir, postgres_server=server
            ),
            f"{plan.growth_jobs:,} jobs": copy_of(
                fill, "stemhook_ingest_full", workdir=self.workdir, postgres_server=server
            ),
        }
        with ExitStack() as stack:
            hooks = [
                replace(
                    stack.enter_context(
                        self.stemhook(scratch, 1, label=f"{backend}-{slug}", phase="growth")
                    ),
                    database=name,
                )
                for (name, scratch), slug in zip(databases.items(), ("empty", "full"), strict=True)
            ]
            for family in plan.growth_families:
                targets = [replace(hook, path=family.path) for hook in hooks]
                self.rounds(
                    targets, family, phase="growth", workers=1, levels=self.plan.connections[-1:]
                )
        for scratch in databases.values():
            scratch.drop()

    def profiled(self, family: Family) -> None:
        """py-spy on one stemhook worker and its writer process (1 worker, first backend) under
        saturating load: a wall-clock recording, then one of GIL-holding samples, under the same
        wrk run."""
        backend = self.plan.backends[0]
        scratch = fresh(
            backend,
            "stemhook_ingest_profile",
            workdir=self.workdir,
            postgres_server=self.plan.postgres_server,
        )
        seconds = self.plan.profile_s
        wall, gil = (self.workdir / f"profile-{family.provider}-{k}.txt" for k in ("wall", "gil"))
        with self.stemhook(scratch, 1, label=f"{backend}-profile", phase="profile") as server:
            hook = replace(server, path=family.path)
            invocation = self.saturating(
                hook, family, 2 * seconds + 5, connections=self.plan.connections[-1]
            )
            with ThreadPoolExecutor(max_workers=1) as pool:
                load = pool.submit(wrk.run, invocation)
                time.sleep(2)  # past the start: imports warmed, writer busy
                # The server leads its own process group (start_new_session): all of stemhook.
                pid, before, started = hook.server.pid, group_cpu_s(hook.server.pid), time.time()
                record(pid, seconds=seconds, output=wall, gil=False)
                took, after = time.time() - started, group_cpu_s(pid)
                record(pid, seconds=seconds, output=gil, gil=True)
                rate = self._acknowledged(hook, load.result()).rate
        scratch.drop()
        cpu = {pid: (used - before.get(pid, 0.0)) / took for pid, used in after.items()}
        self.profile = summarize(wall, gil, web_pid=pid, cpu=cpu, rate=rate)
        self.log(f"profile of {family.provider} on {backend} ({wall}):\n{render(self.profile)}")

    # --- measuring ------------------------------------------------------------------------

    def rounds(
        self,
        targets: list[Target],
        family: Family,
        *,
        phase: str,
        workers: int,
        levels: tuple[int, ...],
    ) -> None:
        for target in targets:
            self.load(target, family, self.plan.warmup_s, connections=levels[-1])
        for number in range(self.plan.rounds):
            start = number % len(targets)
            for target in targets[start:] + targets[:start]:
                for connections in levels:
                    load, cpu = self.measured(target, family, connections)
                    run = Run(
                        phase=phase,
                        target=target.name,
                        backend=target.backend,
                        database=target.database,
                        family=family.provider,
                        workers=workers,
                        round=number,
                        connections=connections,
                        load=load,
                        cpu=cpu,
                    )
                    self.runs.append(run)
                    self.log(
                        f"{phase} w{workers} {family.provider:17} r{number + 1} c{connections:<3}"
                        f" {target.label:22} {load.rate:8,.0f} req/s  p50 {load.p50_ms:6.2f}"
                        f"  p99 {load.p99_ms:6.2f} ms{_database_cpu(cpu)}"
                    )

    def paced(
        self, target: Target, family: Family, *, workers: int, rate_of: Target | None = None
    ) -> None:
        """At half the median saturated rate of `rate_of` (by default the target's own)."""
        measured = rate_of or target
        rates = [
            run.load.rate
            for run in peaks(self.runs)
            if (run.phase, run.target, run.backend, run.database, run.family, run.workers)
            == (
                "ingest",
                measured.name,
                measured.backend,
                measured.database,
                family.provider,
                workers,
            )
        ]
        rate = HALF * statistics.median(rates)
        connections = self.plan.paced_connections
        # Each sender has one request in flight, so an answer slower than its interval
        # (connections / rate) sets its timetable back, and every request due meanwhile counts
        # that delay: a yardstick of the harness, not of the server, which providers sending
        # each callback on its own would not see. Enough senders keep the interval above the
        # server's own tail (PostgreSQL at half rate: p99 0.4-0.5 s with 8, 32-45 ms with 32;
        # durable SQLite, Suno at 2,700 req/s, whose answers took up to 12-15 ms at p99 in its
        # request log: 8.8-41 ms with 32, 13-19 ms with 64). Each is a wrk thread, so not more.
        invocation = wrk.paced(
            target.server.url,
            target.path,
            self.scripts[family.provider, lua.Mode.PACED],
            duration_s=self.plan.paced_s,
            connections=connections,
            rate=rate,
        )
        log_size = target.server.log_size()
        with MachineWatch(self.workdir) as watch:
            load = self._acknowledged(target, wrk.run(invocation))
        slow_commits_ms = target.server.slow_commits_ms(since=log_size)
        self.runs.append(
            Run(
                "paced",
                target.name,
                target.backend,
                target.database,
                family.provider,
                workers,
                0,
                connections,
                load,
                machine=watch.machine,
                slow_commits_ms=slow_commits_ms,
                asked=rate,
            )
        )
        assert load.paced is not None and watch.machine is not None
        self.log(
            f"paced  w{workers} {family.provider:17} {target.label:25} asked {rate:6,.0f} got"
            f" {load.rate:6,.0f} req/s  p50 {load.paced.p50_ms:6.2f}  p99 {load.paced.p99_ms:6.2f}"
            f" ms (from due time); machine: longest hiccup"
            f" {watch.machine.longest_hiccup_ms:.1f} ms, steal {watch.machine.steal_pct:.1f} %,"
            f" longest disk sync {watch.machine.longest_sync_ms:.1f} ms;"
            f" slow commits {len(slow_commits_ms)}"
            f" (longest {max(slow_commits_ms, default=0):.0f} ms)"
        )

    def load(
        self, target: Target, family: Family, duration_s: float, *, connections: int
    ) -> wrk.Load:
        invocation = self.saturating(target, family, duration_s, connections=connections)
        return self._acknowledged(target, wrk.run(invocation))

    def measured(self, target: Target, family: Family, connections: int) -> tuple[wrk.Load, Cpu]:
        """A saturating run, with the CPU time its server's processes, wrk and, for stemhook on
        PostgreSQL, the database server's processes spent on it."""
        pid = target.server.process.pid  # leads its own process group: every worker and writer
        scratch = target.ledger.scratch if target.ledger else None
        watch = PostgresCpu(scratch) if scratch and scratch.backend is Backend.POSTGRESQL else None
        before, wrk_before = group_cpu_s(pid), _children_cpu_s()
        load = self.load(target, family, self.plan.duration_s, connections=connections)
        after, wrk_after = group_cpu_s(pid), _children_cpu_s()
        spent = watch.spent() if watch else None
        per_request = 1e6 / load.requests
        used = [(after[p] - before.get(p, 0.0)) * per_request for p in after]
        processes = tuple(sorted((us for us in used if us >= 1), reverse=True))
        cpu = Cpu(processes, (wrk_after - wrk_before) * per_request)
        if spent is None:
            return load, cpu
        here, elsewhere = spent
        return load, replace(cpu, database=here * per_request, elsewhere=elsewhere * per_request)

    def saturating(
        self, target: Target, family: Family, duration_s: float, *, connections: int
    ) -> wrk.Invocation:
        script = self.scripts[family.provider, lua.Mode.SATURATE]
        return wrk.saturating(
            target.server.url,
            target.path,
            script,
            duration_s=duration_s,
            connections=connections,
            idle=self.plan.generator_idle,
        )

    @staticmethod
    def _acknowledged(target: Target, load: wrk.Load) -> wrk.Load:
        if target.ledger is not None:
            target.ledger.acknowledged += load.requests
        return load

    # --- stemhook servers -----------------------------------------------------------------

    @contextmanager
    def stemhook(
        self, scratch: Scratch, workers: int, *, label: str, phase: str
    ) -> Iterator[Target]:
        ledger = Ledger(
            f"stemhook-{label}", phase, workers, scratch, scratch.mark(), scratch.commits()
        )
        port = free_port()
        # FULL is the default; said explicitly because the figures claim durability.
        env = {"STEMHOOK_DATABASE_URL": scratch.url, "STEMHOOK_SQLITE_SYNCHRONOUS": "FULL"}
        env |= dict(self.plan.settings)
        command = stemhook_command(port, workers)
        with serving(
            ledger.server, command, port=port, workers=workers, workdir=self.workdir, env=env
        ) as server:
            yield Target("stemhook", server, "/", str(scratch.backend), ledger=ledger)
        self._settle(ledger)

    def _settle(self, ledger: Ledger) -> None:
        stored = ledger.stored = ledger.scratch.stored_since(ledger.mark)
        commits = ledger.scratch.commits()
        if commits is not None and ledger.counted_from is not None:
            ledger.commits = commits - ledger.counted_from
        self.ledgers.append(ledger)
        accepted = stored.outcomes.get("accepted", 0)
        summary = (
            f"{ledger.server}: {ledger.acknowledged:,} acknowledged, stored {stored.outcomes},"
            f" {stored.jobs:,} new jobs"
        )
        self.log(summary)
        if (
            accepted < ledger.acknowledged
            or accepted != stored.deliveries
            or accepted != stored.jobs
        ):
            raise Undurable(summary)


def _database_cpu(cpu: Cpu) -> str:
    if cpu.database is None:
        return ""
    return (
        f"  CPU µs/req: stemhook {cpu.server:.0f}, PostgreSQL {cpu.database:.0f}"
        f" (other databases' backends {cpu.elsewhere or 0:.0f}), wrk {cpu.wrk:.0f}"
    )


def _children_cpu_s() -> float:
    """CPU seconds of this process's ended children: wrk, once each run has returned."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime

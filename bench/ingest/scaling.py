"""The report's section on PostgreSQL: where each request's CPU goes, and the scale-out model.

On this machine stemhook, the PostgreSQL server and wrk share the cores, so if CPU is all that
limits the rate, it is cores × 1e6 ÷ their µs per request together: the measured rate against
that figure checks the model. With stemhook replicas on hosts of their own and one PostgreSQL
server, each replica adds what its own processes allow, until the server's CPU per delivery
fills its cores.
"""

from __future__ import annotations

import math
import statistics
import textwrap
from dataclasses import dataclass

from bench.ingest.databases import Backend
from bench.ingest.figures import figure, select
from bench.ingest.outcome import Outcome
from bench.ingest.payloads import Family
from bench.ingest.run import Ledger, Run

DATABASE_CORES = (2, 4, 8)  # the PostgreSQL server's cores the scale-out model is worked for
WIDTH = 96  # the report's generated paragraphs wrap as its written ones do
HEADING = "PostgreSQL: where the CPU goes, and how far replicas take it"


@dataclass(frozen=True)
class Spend:
    """One family at one worker count on PostgreSQL: medians over rounds, µs per request."""

    family: Family
    workers: int
    stemhook: float  # its processes together: web processes and writers
    busiest: float  # its busiest process alone
    database: float
    wrk: float
    rate: float  # measured req/s

    @property
    def together(self) -> float:
        return self.stemhook + self.database + self.wrk

    def model(self, cores: int) -> float:
        """The rate if this machine's cores were the only limit."""
        return cores * 1e6 / self.together

    def replica(self, cores: int) -> float:
        """One replica's rate on a host of its own with `cores` cores: its processes together
        fill them, or its busiest process fills one."""
        return min(cores * 1e6 / self.stemhook, 1e6 / self.busiest)

    def limit(self, database_cores: int) -> float:
        """The PostgreSQL server's rate at most: its CPU per delivery filling its cores."""
        return database_cores * 1e6 / self.database


def section(o: Outcome) -> str:
    if Backend.POSTGRESQL not in o.plan.backends:
        return ""
    spends = [
        spend
        for workers in o.plan.workers
        for family in o.plan.families
        if (spend := _spend(o.runs, family, workers)) is not None
    ]
    if not spends:
        return f"""## {HEADING}

_Not measured: the PostgreSQL server does not run on this machine, so its processes' CPU
cannot be read here._
"""
    cores = o.facts.cores
    here = "\n".join(
        f"| {s.family.provider} | {s.workers} | {s.stemhook:.0f} | {s.database:.0f} | {s.wrk:.0f}"
        f" | {s.together:.0f} | {s.rate:,.0f} | {s.model(cores):,.0f}"
        f" | {s.rate / s.model(cores):.2f} |"
        for s in spends
    )
    limits = " | ".join(f"PostgreSQL on {c} cores" for c in DATABASE_CORES)
    scaled = "\n".join(
        f"| {s.family.provider} | {s.workers} | {s.replica(cores):,.0f} | "
        + " | ".join(
            f"{s.limit(c):,.0f} ({math.ceil(s.limit(c) / s.replica(cores))})"
            for c in DATABASE_CORES
        )
        + " |"
        for s in spends
    )
    elsewhere = max((run.cpu.elsewhere or 0.0 for run in _runs(o.runs) if run.cpu), default=0.0)
    return f"""## {HEADING}

CPU time per answered request on PostgreSQL during the saturating runs above (median over
rounds, µs): stemhook's processes (web and writer processes together), the PostgreSQL
server's (its postmaster and every process it started: the backends, WAL writer, checkpointer
...; a backend that ended during a run is not counted, and backends of other databases on the
same server are left out: at most {elsewhere:.0f} µs per request here), and wrk's. If CPU
alone limited the rate, it would be the model's: {cores} cores × 1e6 ÷ all together. Measured
÷ model near 1: the machine is CPU-bound and the figures account for its cores; well below 1:
something else holds the rate back (waits for commits, other work on the machine).

| family | workers | stemhook µs | PostgreSQL µs | wrk µs | together µs | req/s | model req/s\
 | measured ÷ model |
|---|---|---|---|---|---|---|---|---|
{here}

**Scale-out model.** stemhook replicas on hosts of their own, each like this one ({cores}
cores, no database and no wrk on it), and one PostgreSQL server with C cores. A replica
reaches at most {cores} × 1e6 ÷ its processes' µs together, or 1e6 ÷ its busiest process's
µs if that is less (one process uses one core). Throughput grows by that much per replica
until it reaches the limit, C × 1e6 ÷ PostgreSQL µs per request: the PostgreSQL server's CPU
per delivery filling its cores; more replicas add nothing. Each cell: the limit in req/s, and
in brackets the replicas that reach it.

| family | workers | one replica req/s | {limits} |
|---|---|---|{"---|" * len(DATABASE_CORES)}
{scaled}

{_commits(o)}
"""


def _commits(o: Outcome) -> str:
    """What the next limit, the WAL flush each commit waits for, depends on: as far as the
    server's counters tell it."""
    lines = []
    for ledger in o.ledgers:
        commits, stored = ledger.commits, ledger.stored
        if not _ingest_postgresql(ledger) or commits is None or stored is None:
            continue
        if not commits.here or not commits.everywhere:
            continue
        lines.append(
            f"{ledger.workers} worker{'s' * (ledger.workers > 1)}"
            f" {stored.deliveries / commits.here:.1f} deliveries per commit"
            f" ({stored.deliveries:,} stored in {commits.here:,} transactions), the server"
            f" {commits.wal_syncs / commits.everywhere:.2f} WAL syncs per commit"
        )
    measured = (
        "Over each PostgreSQL server's life (pg_stat_database: its database's transactions;"
        " pg_stat_wal: the whole server's WAL syncs, other databases' included; paced runs and"
        " warm-ups included): " + "; ".join(lines) + "."
        if lines
        else "Deliveries per commit were not measured in this run."
    )
    return textwrap.fill(
        "Past the CPU, the next limit is the WAL flush each commit waits for (commits that"
        " arrive together may share one), and each of stemhook's commits carries a batch of"
        f" deliveries. {measured} How long one flush takes on PostgreSQL's own disk is not"
        " measured here.",
        width=WIDTH,
    )


def _ingest_postgresql(ledger: Ledger) -> bool:
    return ledger.phase == "ingest" and ledger.scratch.backend is Backend.POSTGRESQL


def _runs(runs: list[Run], **cell: object) -> list[Run]:
    return select(runs, phase="ingest", target="stemhook", backend=str(Backend.POSTGRESQL), **cell)


def _spend(runs: list[Run], family: Family, workers: int) -> Spend | None:
    cell = {"family": family.provider, "workers": workers}
    measured = [run.cpu for run in _runs(runs, **cell) if run.cpu and run.cpu.database is not None]
    rate = figure(_runs(runs, **cell))
    if not measured or rate is None:
        return None
    return Spend(
        family=family,
        workers=workers,
        stemhook=statistics.median(cpu.server for cpu in measured),
        busiest=statistics.median(cpu.processes[0] for cpu in measured),
        database=statistics.median(cpu.database or 0.0 for cpu in measured),
        wrk=statistics.median(cpu.wrk for cpu in measured),
        rate=rate.rate,
    )

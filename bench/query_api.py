"""Query API latency at scale: fill a database directly with N jobs, then time the common reads.

    .venv/bin/python -m bench.query_api [--jobs N] [--backend sqlite|postgresql|both]
                                        [--repeat K] [--refill]

Per backend, a database built by the migrations is filled with N jobs and what goes with them
(deliveries, delivery-job links, outputs) by COPY or executemany, and kept: a rerun that finds
N jobs already there only applies pending migrations. Each query is then sent K times, one
after another, through the real application in-process, and its p50/p99 printed.

The issue's target: every query under 20 ms p99 on PostgreSQL at 1,000,000 jobs, 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import random
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar
from urllib.parse import quote

import httpx
from asgi_lifespan import LifespanManager
from sqlalchemy import func, select

from app import models
from app.api.pagination import encode_job_position
from app.config import Settings
from app.db import create_sync_engine, open_read_database
from app.main import create_app
from app.queries.jobs import JobPosition
from app.queries.marks import current_mark
from bench.query_data import (
    DEFAULT_POSTGRES,
    DEFAULT_SQLITE,
    SEED,
    TOKEN,
    PostgresTarget,
    SqliteTarget,
    Target,
    prepare,
    settings_for,
)

TARGET_MS = 20.0
WARMUP = 20
PAGE = 50


@dataclass(frozen=True)
class Query:
    label: str
    paths: list[str]  # repetition i asks paths[i % len(paths)]
    min_items: int = 1  # a listing's least number of items; 0: one job, not a listing

    def path(self, i: int) -> str:
        return self.paths[i % len(self.paths)]


@dataclass(frozen=True)
class Probes:
    """Existing values to ask for, found directly in the database."""

    jobs: list[tuple[str, str]]
    custom_ids: list[str]
    deep_cursors: list[str]
    deep: int


def find_probes(settings: Settings, n: int, count: int) -> Probes:
    rng = random.Random(SEED + 4)
    job = models.Job
    mark = asyncio.run(first_page_mark(settings))
    engine = create_sync_engine(settings, bounded=False)
    try:
        with engine.connect() as connection:
            picks = rng.sample(range(1, n + 1), min(n, count))
            found = connection.execute(select(job.provider, job.job_id).where(job.id.in_(picks)))
            jobs = [(provider, job_id) for provider, job_id in found]
            rng.shuffle(jobs)
            some = rng.sample(range(1, n + 1), min(n, 5000))
            candidates = connection.scalars(
                select(job.custom_id).where(job.id.in_(some), job.custom_id.is_not(None))
            ).all()
            shared = connection.scalars(
                select(job.custom_id)
                .where(job.custom_id.in_(candidates))
                .group_by(job.custom_id)
                .having(func.count() >= 2)
                .order_by(job.custom_id)
                .limit(20)
            ).all()
            deep = int(n * 0.9)
            positions = connection.execute(
                select(job.id, job.last_received_at)
                .order_by(job.last_received_at.desc(), job.id.desc())
                .offset(deep - 1)
                .limit(20 * PAGE)
            ).all()
    finally:
        engine.dispose()
    if not shared or not positions:
        raise SystemExit("the database holds no jobs to ask for: rerun with --refill")
    cursors = [
        encode_job_position(JobPosition(mark, received_at, pk))
        for pk, received_at in positions[::PAGE]
    ]
    return Probes(jobs, [c for c in shared if c], [c for c in cursors if c], deep)


async def first_page_mark(settings: Settings) -> int:
    """The mark a listing's first page would note now, which its later pages carry."""
    database = open_read_database(settings)
    try:
        async with database.sessions() as session:
            return await current_mark(session)
    finally:
        await database.engine.dispose()


def queries(probes: Probes) -> list[Query]:
    return [
        Query("(a) GET /v1/jobs?limit=50", ["/v1/jobs?limit=50"], PAGE),
        Query("(b) GET /v1/jobs?state=failed&limit=50", ["/v1/jobs?state=failed&limit=50"], PAGE),
        Query(
            f"(c) GET /v1/jobs?custom_id=<shared> ({len(probes.custom_ids)} ids)",
            [f"/v1/jobs?custom_id={custom_id}" for custom_id in probes.custom_ids],
            2,
        ),
        Query(
            f"(d) GET /v1/jobs/{{provider}}/{{job_id}} ({len(probes.jobs)} jobs)",
            [f"/v1/jobs/{provider}/{quote(job_id)}" for provider, job_id in probes.jobs],
            0,
        ),
        Query(
            f"(e) GET /v1/jobs?limit=50&cursor=<{probes.deep:,} deep>",
            [f"/v1/jobs?limit=50&cursor={cursor}" for cursor in probes.deep_cursors],
            1,
        ),
        Query("(f) GET /v1/deliveries?limit=50", ["/v1/deliveries?limit=50"], PAGE),
        Query(
            "(g) GET /v1/jobs?provider=tencent-ci&kind=voice_separate&limit=50",
            ["/v1/jobs?provider=tencent-ci&kind=voice_separate&limit=50"],
            PAGE,
        ),
    ]


class Asked(Protocol):
    """Something timed: its label, and the path repetition i asks."""

    @property
    def label(self) -> str: ...

    def path(self, i: int) -> str: ...


A = TypeVar("A", bound=Asked)


@dataclass
class Timed:
    label: str
    samples_ms: list[float]
    full_collections: int  # the interpreter's generation-2 collections while they were taken


class FullCollections:
    """Counts generation-2 garbage collections: each pauses the process for a while."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "stop" and info["generation"] == 2:
            self.count += 1


async def time_queries(settings: Settings, planned: list[Query], repeat: int) -> list[Timed]:
    app = create_app(settings)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://stemhook",
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as client:
            return await time_requests(client, planned, repeat, _check)


async def time_requests(
    client: httpx.AsyncClient,
    planned: Sequence[A],
    repeat: int,
    check: Callable[[A, int, httpx.Response], None],
) -> list[Timed]:
    """Each `repeat` times after a warm-up, one request at a time, every answer checked;
    milliseconds."""
    results = []
    collections = FullCollections()
    gc.callbacks.append(collections)
    try:
        for asked in planned:
            samples = []
            for i in range(-WARMUP, repeat):
                if i == 0:
                    collections.count = 0
                started = time.perf_counter()
                response = await client.get(asked.path(i))
                elapsed_ms = (time.perf_counter() - started) * 1000
                check(asked, i, response)
                if i >= 0:
                    samples.append(elapsed_ms)
            results.append(Timed(asked.label, samples, collections.count))
    finally:
        gc.callbacks.remove(collections)
    return results


def _check(query: Query, i: int, response: httpx.Response) -> None:
    if response.status_code != 200:
        raise SystemExit(f"{query.path(i)}: {response.status_code} {response.text[:300]}")
    answer = response.json()
    found = len(answer.get("items") or []) if query.min_items else int("job_id" in answer)
    if found < max(query.min_items, 1):
        raise SystemExit(f"{query.path(i)}: {found} items, at least {query.min_items} expected")


# --- the report ---------------------------------------------------------------------------


def percentile(samples: list[float], p: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[p - 1]


def report(
    target: Target,
    how: str,
    results: list[Timed],
    *,
    target_ms: float = TARGET_MS,
    what: str = "query",
) -> None:
    size_gb = target.size_bytes() / 1e9
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"\n{target.version()} ({target.url}), {size_gb:.2f} GB, {how}; load now {load}")
    width = max(len(timed.label) for timed in results)
    bound = f"p99 < {target_ms:.0f} ms"
    print(f"  {what:<{width}}  {'p50 ms':>7}  {'p99 ms':>7}  {bound}  full GCs")
    for timed in results:
        p50, p99 = statistics.median(timed.samples_ms), percentile(timed.samples_ms, 99)
        verdict = "yes" if p99 < target_ms else "NO"
        print(
            f"  {timed.label:<{width}}  {p50:7.2f}  {p99:7.2f}  {verdict:<{len(bound)}}"
            f"  {timed.full_collections:8}"
        )


def machine() -> str:
    cpu = "?"
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return (
        f"{os.cpu_count()} cores ({cpu}), load {load}; Python {platform.python_version()} "
        f"on {platform.system()} {platform.release()}; SQLite {sqlite3.sqlite_version}"
    )


def parser_of(prog: str, description: str | None) -> argparse.ArgumentParser:
    """The arguments of a benchmark on the query benchmark's data (bench.query_api's own)."""
    parser = argparse.ArgumentParser(prog=f"python -m {prog}", description=description)
    parser.add_argument("--jobs", type=int, default=1_000_000, help="jobs in the database")
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--repeat", type=int, default=200, help="timed requests of each")
    parser.add_argument("--refill", action="store_true", help="rebuild even a matching database")
    parser.add_argument("--sqlite-path", type=Path, default=DEFAULT_SQLITE)
    parser.add_argument(
        "--postgres-url",
        default=DEFAULT_POSTGRES,
        help="a database of its own: dropped and rebuilt unless it holds --jobs jobs",
    )
    return parser


def targets_of(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[Target]:
    if args.jobs < 1000 or args.repeat < 2:
        parser.error("--jobs needs at least 1000 and --repeat at least 2")
    targets: list[Target] = []
    if args.backend in ("sqlite", "both"):
        targets.append(SqliteTarget(args.sqlite_path))
    if args.backend in ("postgresql", "both"):
        targets.append(PostgresTarget(args.postgres_url))
    return targets


def main(argv: Sequence[str] | None = None) -> None:
    parser = parser_of("bench.query_api", __doc__)
    args = parser.parse_args(argv)
    targets = targets_of(parser, args)
    print(machine())
    print(f"{args.jobs:,} jobs; {args.repeat} timed requests per query, after {WARMUP} warm-up")
    for target in targets:
        print(f"\n{target.name}: preparing ...", flush=True)
        how = prepare(target, args.jobs, refill=args.refill)
        settings = settings_for(target)
        probes = find_probes(settings, args.jobs, args.repeat)
        results = asyncio.run(time_queries(settings, queries(probes), args.repeat))
        report(target, how, results)
        sys.stdout.flush()


if __name__ == "__main__":
    main()

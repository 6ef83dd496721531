"""Console page latency at scale: every page of the web console on the query benchmark's data.

    .venv/bin/python -m bench.console [--jobs N] [--backend sqlite|postgresql|both]
                                      [--repeat K] [--refill] [--output PATH]

Per backend, the database bench.query_api fills and keeps (bench/query_data.py) is prepared as
it prepares it: filled only when it does not hold N jobs of this version of the fill. The console
is signed in to once, through its sign-in form, and each page is then asked K times, one after
another, through the real application in-process, as bench.query_api asks the API; p50/p99
printed. The overview's clock is set to the end of the data (FastAPI's dependency_overrides),
so that its last 24 hours are the fill's last day. --output PATH places the figures in that
markdown file between their markers (bench/ingest/report.py's CONSOLE), at the issue's scale
only.

The issue's target: every page under 100 ms p99 on PostgreSQL at 1,000,000 jobs.
"""

from __future__ import annotations

import asyncio
import random
import re
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, timedelta
from pathlib import Path
from urllib.parse import quote

import httpx
from asgi_lifespan import LifespanManager
from sqlalchemy import func, select

from app import models
from app.api.deps import request_time
from app.config import Settings
from app.console.jobs import TIMELINE_DELIVERIES
from app.db import create_sync_engine
from app.main import create_app
from bench.ingest.facts import Context, load
from bench.ingest.report import CONSOLE
from bench.query_api import (
    WARMUP,
    Probes,
    Timed,
    find_probes,
    machine,
    parser_of,
    percentile,
    report,
    targets_of,
    time_requests,
)
from bench.query_data import END, SEED, START, TOKEN, Target, prepare, settings_for

TARGET_MS = 100.0
ISSUE_JOBS = 1_000_000
PAGE = 50
ORIGIN = "http://stemhook"
# A minute before the fill's last delivery: the overview's 24 hours are the fill's last day.
CLOCK = END.replace(tzinfo=UTC) - timedelta(minutes=1)
LAST_DAY = (END - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
# A day in the middle of the fill, for the deliveries' time filter.
MIDDLE_DAY = (START + (END - START) / 2).replace(hour=0, minute=0, second=0, microsecond=0)
A_DAY = (
    f"received_after={MIDDLE_DAY:%Y-%m-%dT%H:%M}"
    f"&received_before={MIDDLE_DAY + timedelta(days=1):%Y-%m-%dT%H:%M}"
)
_NEXT = re.compile(r'<a rel="next" href="(/ui/jobs\?[^"]+)"')
# The overview of a day with deliveries.
COUNTED = r'aria-label="[1-9]\d* deliveries in the last 24 hours'


@dataclass(frozen=True)
class Page:
    """A console page asked for: `rows` begins each listed item's row (None for a page that
    lists nothing), `shows` is what the page must hold."""

    label: str
    paths: list[str]  # repetition i asks paths[i % len(paths)]
    rows: str | None = None
    least_rows: int = 1
    shows: str = ""  # a regular expression

    def path(self, i: int) -> str:
        return self.paths[i % len(self.paths)]


@dataclass(frozen=True)
class ConsoleProbes:
    """What bench.query_api asks for (random jobs, shared custom ids, deep cursors), and the
    jobs with a long history and random deliveries."""

    api: Probes
    long_jobs: list[tuple[str, str]]
    deliveries: list[int]


def find_console_probes(settings: Settings, n: int, count: int) -> ConsoleProbes:
    api = find_probes(settings, n, count)
    rng = random.Random(SEED + 6)
    job, delivery = models.Job, models.Delivery
    engine = create_sync_engine(settings, bounded=False)
    try:
        with engine.connect() as connection:
            long_jobs = connection.execute(
                select(job.provider, job.job_id)
                .where(job.deliveries > TIMELINE_DELIVERIES)
                .order_by(job.id)
            ).all()
            last = connection.scalar(select(func.max(delivery.id))) or 0
    finally:
        engine.dispose()
    if not long_jobs or not last:
        raise SystemExit("the database holds no long history to show: rerun with --refill")
    picks = rng.sample(range(1, last + 1), min(last, count))
    return ConsoleProbes(api, [(p, j) for p, j in long_jobs], picks)


def pages(probes: ConsoleProbes, second_page: str) -> list[Page]:
    api = probes.api
    job_rows, delivery_rows = "<tr data-state=", "<tr data-outcome="

    def jobs(label: str, query: str, least: int = PAGE) -> Page:
        return Page(f"jobs {label}", [f"/ui/jobs?{query}"], job_rows, least)

    def deliveries(label: str, query: str, least: int = PAGE) -> Page:
        return Page(f"deliveries {label}", [f"/ui/deliveries?{query}"], delivery_rows, least)

    return [
        Page("overview (the fill's last 24 hours)", ["/ui/"], shows=COUNTED),
        Page("jobs", ["/ui/jobs"], job_rows, PAGE),
        jobs("?state=failed", "state=failed"),
        jobs("?provider=suno", "provider=suno"),
        jobs("?provider=tencent-ci&kind=voice_separate", "provider=tencent-ci&kind=voice_separate"),
        jobs("?watch=gave_up", "watch=gave_up"),
        jobs("?files=failed", "files=failed"),
        jobs("?has_error=true", "has_error=true"),
        Page(
            f"jobs ?custom_id=<shared> ({len(api.custom_ids)} ids)",
            [f"/ui/jobs?custom_id={quote(custom_id)}" for custom_id in api.custom_ids],
            job_rows,
            2,
        ),
        jobs(
            "?state=failed&received_after=<a day> (overview link)",
            f"state=failed&received_after={LAST_DAY}",
            1,
        ),
        jobs(
            "?files=failed&received_after=<a day> (overview link)",
            f"files=failed&received_after={LAST_DAY}",
            1,
        ),
        Page("jobs, page 2 (its next link)", [second_page], job_rows, PAGE),
        Page(
            f"jobs, a page {api.deep:,} deep (cursor)",
            [f"/ui/jobs?cursor={cursor}" for cursor in api.deep_cursors],
            job_rows,
        ),
        Page(
            f"a job ({len(api.jobs)} random)",
            [f"/ui/jobs/{provider}/{quote(job_id, safe='')}" for provider, job_id in api.jobs],
            shows='id="job"',
        ),
        Page(
            f"a job with {TIMELINE_DELIVERIES}+ deliveries, outputs ({len(probes.long_jobs)})",
            [
                f"/ui/jobs/{provider}/{quote(job_id, safe='')}"
                for provider, job_id in probes.long_jobs
            ],
            shows='class="output"',
        ),
        Page("deliveries", ["/ui/deliveries"], delivery_rows, PAGE),
        deliveries("?outcome=rejected&outcome=orphaned", "outcome=rejected&outcome=orphaned"),
        deliveries("?provider=tencent-media-lab", "provider=tencent-media-lab"),
        deliveries(
            "?outcome=rejected&outcome=orphaned&received_after=<a day> (overview link)",
            f"outcome=rejected&outcome=orphaned&received_after={LAST_DAY}",
            1,
        ),
        deliveries("?received_after=&received_before= (a day)", A_DAY),
        Page(
            f"a delivery ({len(probes.deliveries)} random)",
            [f"/ui/deliveries/{delivery_id}" for delivery_id in probes.deliveries],
            shows="<h2>Jobs it touched</h2>",
        ),
    ]


def check(page: Page, i: int, response: httpx.Response) -> None:
    if response.status_code != 200:
        raise SystemExit(f"{page.path(i)}: {response.status_code} {response.text[:300]}")
    if page.rows is not None and response.text.count(page.rows) < page.least_rows:
        found = response.text.count(page.rows)
        raise SystemExit(f"{page.path(i)}: {found} rows, at least {page.least_rows} expected")
    if re.search(page.shows, response.text) is None:
        raise SystemExit(f"{page.path(i)}: no {page.shows!r} on the page")


async def time_pages(settings: Settings, probes: ConsoleProbes, repeat: int) -> list[Timed]:
    app = create_app(settings)
    app.dependency_overrides[request_time] = lambda: CLOCK
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as client:
            await sign_in(client)
            first = await client.get("/ui/jobs")
            found = _NEXT.search(first.text)
            if found is None:
                raise SystemExit("/ui/jobs: no link to the next page")
            return await time_requests(client, pages(probes, found[1]), repeat, check)


async def sign_in(client: httpx.AsyncClient) -> None:
    """Once, as a browser does: the form posted from the console's own origin; the client keeps
    the session's cookie."""
    answer = await client.post("/ui/sign-in", data={"token": TOKEN}, headers={"Origin": ORIGIN})
    if answer.status_code != 303 or not client.cookies:
        raise SystemExit(f"signing in: {answer.status_code} {answer.text[:300]}")


# --- the report ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Measured:
    target: Target
    how: str  # how the database came to be (prepare's answer)
    size_gb: float
    results: list[Timed]


def section(measured: list[Measured], *, repeat: int, context: Context) -> str:
    lines = [
        f"Written by `{context.command}` on {context.date} at commit `{context.commit}`."
        " Each database holds the query benchmark's data (bench/query_data.py:"
        " jobs over 90 days with their deliveries, state changes, output files and watches,"
        " one in 50,000 with a long history of poll answers), as `make bench-query` keeps it."
        f" The console is signed in to once through its form; then each page is asked {repeat}"
        f" times, one request at a time after {WARMUP} warm-up requests, through the real"
        " application in-process (`create_app` + `httpx.ASGITransport`: no socket, no proxy),"
        " the overview's clock set to the fill's end. Target: p99 under"
        f" {TARGET_MS:.0f} ms on PostgreSQL. How each figure is taken:"
        " [bench/README.md](bench/README.md).",
        "",
        f"Machine: {context.machine}. Shared with other work, so these move with its load: load"
        f" average at {'; at '.join(context.loads)}.",
    ]
    for m in measured:
        lines += [
            "",
            f"### {m.target.version()}",
            "",
            f"{m.size_gb:.2f} GB, {m.how}.",
            "",
            f"| page | p50 ms | p99 ms | p99 < {TARGET_MS:.0f} ms | full GCs |",
            "|---|---|---|---|---|",
        ]
        for timed in m.results:
            p50, p99 = statistics.median(timed.samples_ms), percentile(timed.samples_ms, 99)
            verdict = "yes" if p99 < TARGET_MS else "**no**"
            gcs = timed.full_collections
            lines.append(f"| `{timed.label}` | {p50:.2f} | {p99:.2f} | {verdict} | {gcs} |")
    return CONSOLE.wrap("\n".join(lines))


def main(argv: Sequence[str] | None = None) -> None:
    parser = parser_of("bench.console", __doc__)
    parser.add_argument("--output", type=Path, help="a markdown file to place the section in")
    args = parser.parse_args(argv)
    targets = targets_of(parser, args)
    if args.output and args.jobs != ISSUE_JOBS:
        parser.error(f"--output takes figures at the issue's {ISSUE_JOBS:,} jobs only")
    print(machine())
    print(f"{args.jobs:,} jobs; {args.repeat} timed requests per page, after {WARMUP} warm-up")
    loads = [load("start")]
    measured = []
    for target in targets:
        print(f"\n{target.name}: preparing ...", flush=True)
        how = prepare(target, args.jobs, refill=args.refill)
        settings = settings_for(target)
        probes = find_console_probes(settings, args.jobs, args.repeat)
        results = asyncio.run(time_pages(settings, probes, args.repeat))
        report(target, how, results, target_ms=TARGET_MS, what="page")
        measured.append(Measured(target, how, target.size_bytes() / 1e9, results))
        sys.stdout.flush()
    loads.append(load("end"))
    if args.output:
        server = args.postgres_url.rsplit("/", 1)[0]
        context = Context.of("bench.console", loads, server)
        CONSOLE.write_into(args.output, section(measured, repeat=args.repeat, context=context))
        print(f"\nwrote its section of {args.output}")


if __name__ == "__main__":
    main()

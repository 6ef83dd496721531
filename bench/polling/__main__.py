"""Polling's figures: how many polls a second the background process sustains, and whether
10,000 registered jobs whose polls are due move ingest beyond noise.

    .venv/bin/python -m bench.polling [--quick] [--backend sqlite|postgresql|both]
        [--watches N] [--concurrency C ...] [--family F] [--rounds R] [--output PATH]

Per backend, on loopback only (bench/polling/runs.py): jobs registered through the API, polls per
second against a fast fake provider, then ingest throughput side by side with every poll due and
none, and paced latency of both. Figures only, never a verdict: on a shared machine they move
with its load (printed with them). --output PATH places the section in that markdown file between
its markers (bench/ingest/report.py's POLLING), as bench.mirror does with BENCHMARKS.md; --quick
runs a few hundred jobs and short windows, a smoke run whose figures go into no report.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.beside import Rounds, noise_line
from bench.ingest.cli import PACED_CONNECTIONS, PROVIDERS
from bench.ingest.databases import PG_SERVER, Backend
from bench.ingest.facts import Context, load
from bench.ingest.payloads import family
from bench.ingest.report import POLLING
from bench.polling.report import section
from bench.polling.runs import Plan, measure
from bench.stand_ins import started

WATCHES = 10_000
CONCURRENCIES = (4, 16)  # the default, then one where a poll's round trip matters less


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of a minute or two")
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="sqlite")
    parser.add_argument("--watches", type=int, help=f"jobs registered (default {WATCHES:,})")
    parser.add_argument(
        "--concurrency",
        type=int,
        nargs="+",
        help="STEMHOOK_POLL_CONCURRENCY of the polls-per-second runs; the first one's server"
        " also ingests (default 4 16, quick 4)",
    )
    parser.add_argument("--family", choices=PROVIDERS, default="tencent-ci")
    parser.add_argument("--rounds", type=int, help="ingest rounds (default 6, quick 2)")
    parser.add_argument("--output", type=Path, help="a markdown file to place the section in")
    args = parser.parse_args()
    if args.quick and args.output:
        parser.error("--quick is a smoke run: its figures go into no report")
    plan = _plan(args)
    backends = list(Backend) if args.backend == "both" else [Backend(args.backend)]
    workdir = Path(tempfile.mkdtemp(prefix="stemhook-polling-"))
    print(f"scratch files (server logs, wrk scripts) in {workdir}", flush=True)
    started_at = time.monotonic()

    def log(message: str) -> None:
        print(f"[{(time.monotonic() - started_at) / 60:4.1f} min] {message}", flush=True)

    loads = [load("start")]
    with started("bench.polling.provider") as provider:
        outcomes = [measure(backend, plan, provider, workdir, log) for backend in backends]
    loads.append(load("end"))
    for outcome in outcomes:
        log(noise_line(outcome.backend.label, outcome.ingest))
    text = section(outcomes, plan, Context.of("bench.polling", loads, PG_SERVER))
    print(text)
    if args.output:
        POLLING.write_into(args.output, text)
        print(f"wrote its section of {args.output}")


def _plan(args: argparse.Namespace) -> Plan:
    quick = args.quick
    return Plan(
        watches=args.watches or (300 if quick else WATCHES),
        concurrencies=tuple(args.concurrency or ((4,) if quick else CONCURRENCIES)),
        window_s=5 if quick else 20,
        ingest=Rounds(
            family(args.family),
            rounds=args.rounds or (2 if quick else 6),
            duration_s=2 if quick else 5,
            connections=128,
        ),
        paced_s=3 if quick else 20,
        paced_connections=PACED_CONNECTIONS,
    )


if __name__ == "__main__":
    main()

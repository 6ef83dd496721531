"""Mirroring's figures: how fast result files come in, and what a download costs the callbacks.

    .venv/bin/python -m bench.mirror [--quick] [--backend sqlite|postgresql|both] [--rounds R]
        [--output PATH]

Per backend, on loopback only (bench/mirror/runs.py): the mirror's throughput for many small
files and for a few large ones, then callback latency at a fixed rate and saturating ingest,
each side by side with the mirror idle and streaming large files (bench/beside.py's rounds).
Figures only, never a verdict: on a shared machine they move with
its load (printed with them). --output PATH places the section in that markdown file between its
markers (bench/ingest/report.py's MIRROR), as bench.retention does with BENCHMARKS.md; --quick
runs small sets and short windows, a smoke run whose figures go into no report.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

from bench.beside import P50, P99, Rounds, noise_line
from bench.ingest.databases import PG_SERVER, Backend
from bench.ingest.facts import Context, load
from bench.ingest.payloads import family
from bench.ingest.report import MIRROR
from bench.mirror.report import Outcome, section, throughput_line
from bench.mirror.runs import (
    GIB,
    KIB,
    MIB,
    FileSet,
    Plan,
    beside_downloads,
    file_server,
    throughput,
)

_CI = family("tencent-ci")  # final callbacks whose COS outputs are skipped: nothing to fetch
FULL = Plan(
    (FileSet("small", 400, 256 * KIB), FileSet("large", 8, 64 * MIB)),
    GIB,
    Rounds(_CI, rounds=4, duration_s=10, connections=32, rate=300),
    Rounds(_CI, rounds=6, duration_s=5, connections=128),
)
QUICK = Plan(
    (FileSet("small", 40, 256 * KIB), FileSet("large", 2, 64 * MIB)),
    GIB,
    Rounds(_CI, rounds=2, duration_s=3, connections=32, rate=300),
    Rounds(_CI, rounds=2, duration_s=2, connections=128),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of a minute or two")
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="sqlite")
    parser.add_argument(
        "--rounds", type=int, help="latency and ingest rounds (default 4 and 6, quick 2)"
    )
    parser.add_argument("--output", type=Path, help="a markdown file to place the section in")
    args = parser.parse_args()
    if args.quick and args.output:
        parser.error("--quick is a smoke run: its figures go into no report")
    plan = QUICK if args.quick else FULL
    if args.rounds:
        plan = dataclasses.replace(
            plan,
            latency=dataclasses.replace(plan.latency, rounds=args.rounds),
            ingest=dataclasses.replace(plan.ingest, rounds=args.rounds),
        )
    backends = list(Backend) if args.backend == "both" else [Backend(args.backend)]
    workdir = Path(tempfile.mkdtemp(prefix="stemhook-mirror-"))
    print(f"scratch files (server logs) in {workdir}", flush=True)
    started_at = time.monotonic()

    def log(message: str) -> None:
        print(f"[{(time.monotonic() - started_at) / 60:4.1f} min] {message}", flush=True)

    loads = [load("start")]
    outcomes = []
    with file_server(workdir) as files:
        for backend in backends:
            throughputs = []
            for file_set in plan.sets:
                throughputs.append(measured := throughput(files, file_set, backend, workdir))
                log(throughput_line(backend, measured))
            paced = beside_downloads(files, plan, plan.latency, backend, workdir, log)
            log(noise_line(backend.label, paced, "callback", (P99, P50)))
            rounds = beside_downloads(files, plan, plan.ingest, backend, workdir, log)
            log(noise_line(backend.label, rounds))
            outcomes.append(Outcome(backend, tuple(throughputs), paced, rounds))
    loads.append(load("end"))
    context = Context.of("bench.mirror", loads, PG_SERVER)
    text = section(outcomes, plan, context)
    print(text)
    if args.output:
        MIRROR.write_into(args.output, text)
        print(f"wrote its section of {args.output}")


if __name__ == "__main__":
    main()

"""Mirroring's figures: how fast result files come in, and what a download costs the callbacks.

    .venv/bin/python -m bench.mirror [--quick] [--backend sqlite|postgresql|both] [--output PATH]

Per backend, on loopback only (bench/mirror/runs.py): the mirror's throughput for many small
files and for a few large ones, then callback latency at a fixed rate with the mirror idle and
while it streams large files. Figures only, never a verdict: on a shared machine they move with
its load (printed with them). --output PATH places the section in that markdown file between its
markers (bench/ingest/report.py's MIRROR), as bench.retention does with BENCHMARKS.md; --quick
runs small sets and short windows, a smoke run whose figures go into no report.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench.ingest.databases import PG_SERVER, Backend
from bench.ingest.facts import Context, load
from bench.ingest.report import MIRROR
from bench.mirror.report import Outcome, latency_line, section, throughput_line
from bench.mirror.runs import (
    GIB,
    KIB,
    MIB,
    FileSet,
    Plan,
    file_server,
    latency,
    throughput,
)

FULL = Plan((FileSet("small", 400, 256 * KIB), FileSet("large", 8, 64 * MIB)), GIB, 20, 300, 32)
QUICK = Plan((FileSet("small", 40, 256 * KIB), FileSet("large", 2, 64 * MIB)), GIB, 5, 300, 32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of a minute or two")
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="sqlite")
    parser.add_argument("--output", type=Path, help="a markdown file to place the section in")
    args = parser.parse_args()
    if args.quick and args.output:
        parser.error("--quick is a smoke run: its figures go into no report")
    plan = QUICK if args.quick else FULL
    backends = list(Backend) if args.backend == "both" else [Backend(args.backend)]
    workdir = Path(tempfile.mkdtemp(prefix="stemhook-mirror-"))
    print(f"scratch files (server logs) in {workdir}", flush=True)
    loads = [load("start")]
    outcomes = []
    with file_server(workdir) as files:
        for backend in backends:
            throughputs = []
            for file_set in plan.sets:
                throughputs.append(measured := throughput(files, file_set, backend, workdir))
                print(throughput_line(backend, measured), flush=True)
            outcomes.append(
                Outcome(backend, tuple(throughputs), latency(files, plan, backend, workdir))
            )
            print(latency_line(backend, outcomes[-1].latency), flush=True)
    loads.append(load("end"))
    context = Context.of("bench.mirror", loads, PG_SERVER)
    text = section(outcomes, plan, context)
    print(text)
    if args.output:
        MIRROR.write_into(args.output, text)
        print(f"wrote its section of {args.output}")


if __name__ == "__main__":
    main()

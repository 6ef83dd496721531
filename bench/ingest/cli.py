"""python -m bench.ingest: the ingest benchmark, from the command line to BENCHMARKS.md."""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench.ingest.databases import Backend
from bench.ingest.facts import fingerprint, gather
from bench.ingest.outcome import Outcome
from bench.ingest.parsers import parser_costs
from bench.ingest.payloads import FAMILIES, family
from bench.ingest.report import LATER, REPORT, render
from bench.ingest.run import Bench, Plan, peaks
from bench.query_data import DEFAULT_POSTGRES, DEFAULT_SQLITE

DESCRIPTION = """\
Ingest throughput and latency of stemhook's callback endpoints under wrk, beside a bare
FastAPI endpoint and one that only parses (same uvicorn settings, same worker count), on
SQLite and PostgreSQL with 1 and 2 workers; latency at half the maximum rate; parser cost per
payload; an empty database against 1,000,000 jobs; optionally a py-spy profile.

A full, unfiltered run overwrites BENCHMARKS.md with its report (its reliability and
retention sections left for bench.reliability and bench.retention); --quick and filtered runs
print the same report and write a file only with --output.
"""
PROVIDERS = [f.provider for f in FAMILIES]
CONNECTIONS = [32, 128]  # the saturating runs' wrk connection counts (Plan.connections)
PACED_CONNECTIONS = 64  # the half-rate runs' (Plan.paced_connections)


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    plan = _plan(args)
    workdir = Path(tempfile.mkdtemp(prefix="stemhook-ingest-"))
    memory = _tmpfs_directory()
    try:
        _run(args, argv, plan, Bench(plan, workdir, memory))
    finally:
        if memory is not None:
            shutil.rmtree(memory)


def _tmpfs_directory() -> Path | None:
    """A scratch directory on /dev/shm where that is a tmpfs (the paced control's database)."""
    mounts = Path("/proc/mounts")
    if not mounts.exists():
        return None
    if not any(
        line.split()[1:3] == ["/dev/shm", "tmpfs"] for line in mounts.read_text().splitlines()
    ):
        return None
    try:
        return Path(tempfile.mkdtemp(prefix="stemhook-ingest-", dir="/dev/shm"))
    except OSError:
        return None


def _run(args: argparse.Namespace, argv: Sequence[str] | None, plan: Plan, bench: Bench) -> None:
    scope = _scope(args)
    output: Path | None = args.output or (REPORT if scope == "full" else None)
    workdir = bench.workdir
    facts = gather(workdir, plan.postgres_server)
    bench.log(f"{scope} run; scratch files in {workdir}")

    costs = parser_costs(plan.families) if plan.parsers else []
    for cost in costs:
        bench.log(
            f"parser {cost.family.provider:17} parse_callback {cost.parse_callback_us:6.0f} µs,"
            f" bare decode {cost.decode_us:6.0f} µs"
        )
    for workers in plan.workers:
        bench.ingest(workers)
        facts.note_load(f"after {workers} worker(s)")
    if plan.growth_families:
        for backend in plan.backends:
            bench.growth(backend)
        facts.note_load("after growth")
    if plan.profile is not None:
        bench.profiled(plan.profile)
    facts.code_at_end = fingerprint()
    if facts.code_changed:
        bench.log("! app/ changed during the run: the figures mix two versions of the code")

    outcome = Outcome(
        plan=plan,
        facts=facts,
        command=_command(argv),
        scope=scope,
        runs=peaks(bench.runs),
        sweep=bench.runs,
        ledgers=bench.ledgers,
        parser_costs=costs,
        profile=bench.profile,
        profile_family=plan.profile,
        workdir=workdir,
    )
    (workdir / "results.json").write_text(
        json.dumps([dataclasses.asdict(run) for run in bench.runs], indent=1)
    )
    text = render(outcome, LATER if output else ())
    print("\n" + text)
    if output:
        output.write_text(text)
        bench.log(f"wrote {output}")
    bench.log("done")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ingest",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="~3 minutes: short runs, 1 worker")
    parser.add_argument("--family", choices=PROVIDERS, action="append", help="repeatable")
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--workers", type=int, nargs="+", choices=(1, 2, 3, 4))
    parser.add_argument("--rounds", type=int, help="runs per target (default 3, quick 2)")
    parser.add_argument("--duration", type=float, help="seconds per run (default 5, quick 2)")
    parser.add_argument(
        "--paced-duration",
        type=float,
        help="seconds of each half-rate run (default 30, quick 5)",
    )
    parser.add_argument(
        "--paced-connections",
        type=int,
        default=PACED_CONNECTIONS,
        help="senders of the half-rate runs, each a wrk thread with one connection (64)",
    )
    parser.add_argument(
        "--connections",
        type=int,
        nargs="+",
        default=CONNECTIONS,
        help="wrk connection counts of the saturating runs, each target's best counts (32 128)",
    )
    parser.add_argument("--no-growth", action="store_true", help="skip empty vs 1M jobs")
    parser.add_argument("--no-parsers", action="store_true", help="skip the parser timings")
    parser.add_argument(
        "--generator-idle",
        action="store_true",
        help="saturating runs: wrk at SCHED_IDLE, on CPU time no server process wants (a"
        " diagnostic: a woken wrk otherwise preempts a busy server process, docs/decisions/0006)",
    )
    parser.add_argument("--growth-jobs", type=int, default=1_000_000)
    parser.add_argument(
        "--profile",
        nargs="?",
        const="tencent-ci",
        choices=PROVIDERS,
        help="py-spy the stemhook server under this family's load (default tencent-ci)",
    )
    parser.add_argument("--profile-seconds", type=int, help="default 10, quick 5")
    parser.add_argument("--output", type=Path, help="write the report here")
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a stemhook setting for its servers (mirror=false: STEMHOOK_MIRROR=false); repeatable",
    )
    parser.add_argument(
        "--sqlite-fill", type=Path, default=DEFAULT_SQLITE, help="bench/query_data.py's cache"
    )
    parser.add_argument(
        "--postgres-fill", default=DEFAULT_POSTGRES, help="bench/query_data.py's cache"
    )
    return parser


def _plan(args: argparse.Namespace) -> Plan:
    families = tuple(family(p) for p in args.family) if args.family else FAMILIES
    backends = (
        (Backend.SQLITE, Backend.POSTGRESQL) if args.backend == "both" else (Backend(args.backend),)
    )
    quick = args.quick
    # Quick: growth on the first family only (the 1M copy dominates a short run anyway).
    growth_families = families[:1] if quick else families
    return Plan(
        families=families,
        backends=backends,
        workers=tuple(args.workers or ((1,) if quick else (1, 2))),
        rounds=args.rounds or (2 if quick else 3),
        duration_s=args.duration or (2.0 if quick else 5.0),
        paced_s=args.paced_duration or (5.0 if quick else 30.0),
        paced_connections=args.paced_connections,
        warmup_s=1.0,
        connections=tuple(args.connections),
        growth_families=() if args.no_growth else growth_families,
        growth_jobs=args.growth_jobs,
        parsers=not args.no_parsers,
        profile=family(args.profile) if args.profile else None,
        profile_s=args.profile_seconds or (5 if quick else 10),
        sqlite_fill=args.sqlite_fill,
        postgres_fill=args.postgres_fill,
        generator_idle=args.generator_idle,
        settings=tuple(_setting(text) for text in args.setting),
    )


def _setting(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not equals or not name:
        raise SystemExit(f"--setting {text!r}: expected NAME=VALUE, e.g. mirror=false")
    return f"STEMHOOK_{name.upper()}", value


def _scope(args: argparse.Namespace) -> str:
    left_out = [
        name
        for name, given in (
            ("quick", args.quick),
            ("--family", args.family),
            ("--backend", args.backend != "both"),
            ("--workers", args.workers),
            ("--rounds", args.rounds),
            ("--duration", args.duration),
            ("--paced-duration", args.paced_duration),
            ("--paced-connections", args.paced_connections != PACED_CONNECTIONS),
            ("--connections", args.connections != CONNECTIONS),
            ("--no-growth", args.no_growth),
            ("--no-parsers", args.no_parsers),
            ("--generator-idle", args.generator_idle),
        )
        if given
    ]
    return "full" if not left_out else "partial (" + ", ".join(left_out) + ")"


def _command(argv: Sequence[str] | None) -> str:
    given = sys.argv[1:] if argv is None else list(argv)
    return shlex.join([".venv/bin/python", "-m", "bench.ingest", *given])

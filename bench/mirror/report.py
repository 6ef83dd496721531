"""The mirror benchmark's figures as a markdown section: printed, and with --output placed in a
report between its markers (bench/ingest/report.py's MIRROR)."""

from __future__ import annotations

from dataclasses import dataclass

from bench.beside import HICCUP, P50, P99, Beside, Figure, tables
from bench.ingest.databases import Backend
from bench.ingest.facts import Context
from bench.ingest.report import MIRROR
from bench.mirror.runs import GIB, KIB, MIB, Plan, Throughput

WROTE = Figure("MiB ", "MiB", "what the mirror wrote, in MiB", lambda run: run.done, 0)


@dataclass(frozen=True)
class Outcome:
    backend: Backend
    throughputs: tuple[Throughput, ...]
    latency: Beside  # paced; what the mirror wrote, in MiB, is its `done`
    ingest: Beside  # saturating; likewise


def section(outcomes: list[Outcome], plan: Plan, context: Context) -> str:
    return MIRROR.wrap(
        "\n".join(
            [
                _intro(context),
                _throughput(outcomes),
                _latency(outcomes, plan),
                _ingest(outcomes, plan),
            ]
        )
    )


def throughput_line(backend: Backend, t: Throughput) -> str:
    return (
        f"{backend.label}: {t.set.files} × {size(t.set.size)} in {t.seconds:.2f} s:"
        f" {t.set.files / t.seconds:,.1f} files/s, {t.mib / t.seconds:,.1f} MiB/s; CPU s: mirror"
        f" {t.mirror_cpu_s:.2f} ({1000 * t.mirror_cpu_s / t.mib:.2f} ms/MiB), rest of stemhook"
        f" {t.rest_cpu_s:.2f}, file server {t.files_cpu_s:.2f}"
    )


def size(value: int) -> str:
    for unit, name in ((GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")):
        if value >= unit and value % unit == 0:
            return f"{value // unit} {name}"
    return f"{value} B"


def _intro(context: Context) -> str:
    return f"""Written by `{context.command}` on {context.date} at commit `{context.commit}`.
Everything on loopback: one `stemhook serve` (1 worker, mirroring on with its default
settings) per measurement, each on a fresh database (SQLite at synchronous=FULL, or
PostgreSQL), its files stored in a directory on the scratch disk; the files come from a small
server on 127.0.0.1 that sends them with sendfile(2) (bench/mirror/fileserver.py; its own CPU
time is in the table). How each figure is taken: [bench/README.md](bench/README.md).

Machine: {context.machine}. Shared with other work, so these move with its load: load average
at {"; at ".join(context.loads)}.
"""


def _throughput(outcomes: list[Outcome]) -> str:
    rows = [
        f"| {o.backend.label} | {t.set.files} × {size(t.set.size)} | {t.seconds:.2f} |"
        f" {t.set.files / t.seconds:,.1f} | {t.mib / t.seconds:,.1f} | {t.mirror_cpu_s:.2f} |"
        f" {1000 * t.mirror_cpu_s / t.mib:.2f} | {t.rest_cpu_s:.2f} | {t.files_cpu_s:.2f} |"
        for o in outcomes
        for t in o.throughputs
    ]
    return "\n".join(
        [
            "### Throughput",
            "",
            "Suno callbacks naming two files each, posted one after another; timed from the"
            " first callback until the database holds every file stored (up to a second of it"
            " before the idle mirror's next poll finds the first). CPU seconds over the"
            " same span: the mirror process, stemhook's other processes (web process, writer),"
            " and the file server.",
            "",
            "| backend | files | seconds | files/s | MiB/s | mirror CPU s | mirror CPU ms/MiB"
            " | rest of stemhook CPU s | file server CPU s |",
            "|---|---|---|---|---|---|---|---|---|",
            *rows,
            "",
        ]
    )


def _latency(outcomes: list[Outcome], plan: Plan) -> str:
    rounds = plan.latency
    assert rounds.rate is not None, "latency is measured at a fixed rate"
    return "\n".join(
        [
            "### Callback latency while a file streams in",
            "",
            f"Tencent CI callbacks (their outputs are COS objects, skipped without COS"
            f" credentials: nothing is fetched for them) paced by wrk at {rounds.rate:,.0f}/s"
            f" from {rounds.connections} connections, runs of {rounds.duration_s:g} s on a server"
            " of their own, latency counted from when each request was due"
            " (bench/ingest/lua.py): in each round one run while the mirror downloads"
            f" {size(plan.stream_size)} files one after another (*streaming*: a Suno callback"
            " each, the next posted once the last is stored; wrk starts once a file's bytes reach"
            " the store) and two while it has nothing to fetch (*idle*, a and b: every file posted"
            " stored), in an order that rotates from round to round. Ratios of p99 and of p50 are"
            " taken within a round (streaming ÷ the mean of the two idle runs), median (min–max)"
            f" over {rounds.rounds} rounds. The ratio of the two idle runs is the noise: mirroring"
            " moves callback latency beyond noise only where streaming ÷ idle falls outside its"
            " range. MiB: what the mirror process wrote (/proc/<pid>/io); it polls its queue once"
            " a second, so it idles up to a second between two files. The longest hiccup is the"
            " longest a 1 ms sleep of the benchmark's overslept (bench/ingest/hiccups.py): a"
            " latency no longer than it may be the machine's.",
            "",
            *tables(
                [(o.backend.label, o.latency) for o in outcomes], "MiB", (P99, P50), (HICCUP, WROTE)
            ),
        ]
    )


def _ingest(outcomes: list[Outcome], plan: Plan) -> str:
    rounds = plan.ingest
    return "\n".join(
        [
            "",
            "### Ingest while files stream in",
            "",
            f"The same callbacks from wrk, saturating runs of {rounds.duration_s:g} s from"
            f" {rounds.connections} connections on a server of their own: in each round one run"
            f" while the mirror downloads {size(plan.stream_size)} files one after another"
            " (*streaming*, as above; wrk starts once a file's bytes reach the store) and two"
            " while it has nothing to fetch (*idle*, a and b: every file posted stored), in an"
            " order that rotates from round to round. Ratios are taken within a round"
            " (streaming ÷ the mean of the two idle runs), median (min–max) over"
            f" {rounds.rounds} rounds. The ratio of the two idle runs is the noise: mirroring"
            " moves ingest beyond noise only where streaming ÷ idle falls outside its range."
            " MiB: what the mirror process wrote (/proc/<pid>/io).",
            "",
            *tables([(o.backend.label, o.ingest) for o in outcomes], "MiB"),
        ]
    )

"""The figures' sections of BENCHMARKS.md: one table per measurement, and their verdicts."""

from __future__ import annotations

import statistics

from app.ingest.committer import SLOW_COMMIT_S
from bench.ingest.databases import Backend
from bench.ingest.figures import Figure, Paced, Ratio, figure, paced, ratio, select
from bench.ingest.hiccups import Machine
from bench.ingest.outcome import Outcome
from bench.ingest.payloads import Family
from bench.ingest.profile import breakdown
from bench.ingest.run import HALF, TMPFS, Cpu, Run

TARGET_RATIO = 0.7
TARGET_P99_MS = 50.0  # the paced table's "p99 < 50" column says so
FLAT = 0.9  # 1M-job rate at least this share of the empty database's


def ingest(o: Outcome) -> str:
    parts = ["## Ingest throughput, side by side\n"]
    parts.append(
        f"Saturating load: wrk with {counts(o.plan.connections)} connections, {o.plan.rounds}"
        f" rounds of {o.plan.duration_s:g} s per target and connection count after a"
        f" {o.plan.warmup_s:g} s warm-up. A target's rate in a round is its best over the"
        " connection counts (@ says which: [by connection count](#by-connection-count)); req/s"
        " is the median over rounds, p50/p99 (ms, from when the request left) the median of the"
        " rounds' percentiles at that count, the ratios the median of the per-round ratios with"
        " their range.\n"
    )
    for workers in o.plan.workers:
        parts.append(f"### {workers} worker{'s' * (workers > 1)}\n")
        head = "| family | bare req/s (p50/p99) | parse req/s (p50/p99) |"
        rule = "|---|---|---|"
        for backend in o.plan.backends:
            name = backend.label
            head += f" stemhook {name} req/s (p50/p99) | ÷ parse | ÷ bare |"
            rule += "---|---|---|"
        parts += [head, rule]
        for family in o.plan.families:
            cell = {"phase": "ingest", "family": family.provider, "workers": workers}
            row = f"| {family.provider} |"
            for reference in ("bare", "parse"):
                row += f" {_fig(figure(o.runs, target=reference, **cell))} |"
            for backend in o.plan.backends:
                hook = figure(o.runs, target="stemhook", backend=str(backend), **cell)
                row += f" {_fig(hook)} |"
                for reference in ("parse", "bare"):
                    row += (
                        f" {spread(stemhook_ratio(o.runs, family, backend, workers, reference))} |"
                    )
            parts.append(row)
        parts.append("")
    return "\n".join(parts)


def by_connections(o: Outcome) -> str:
    """Every target's rate at each connection count: what choosing the best of them did."""
    if len(o.plan.connections) < 2:
        return ""
    parts = [
        "### By connection count\n",
        "Median req/s over rounds at each connection count, and stemhook ÷ parse with both at"
        " that count (median of the rounds' ratios). The references answer each request on its"
        " own and are saturated with the fewest connections (more only queue); stemhook answers a"
        " batch of deliveries after one commit, so its batches, and its rate, grow with the"
        " requests in flight.\n",
    ]
    head = "| workers | family | connections | bare | parse |"
    rule = "|---|---|---|---|---|"
    for backend in o.plan.backends:
        head += f" stemhook {backend.label} | ÷ parse |"
        rule += "---|---|"
    parts += [head, rule]
    for workers in o.plan.workers:
        for family in o.plan.families:
            for connections in o.plan.connections:
                cell = {
                    "phase": "ingest",
                    "workers": workers,
                    "family": family.provider,
                    "connections": connections,
                }
                row = f"| {workers} | {family.provider} | {connections} |"
                for reference in ("bare", "parse"):
                    row += f" {_rate(figure(o.sweep, target=reference, **cell))} |"
                for backend in o.plan.backends:
                    hook = {**cell, "target": "stemhook", "backend": str(backend)}
                    of_parse = ratio(o.sweep, hook, {**cell, "target": "parse"})
                    row += f" {_rate(figure(o.sweep, **hook))} | {short(of_parse)} |"
                parts.append(row)
    parts.append("")
    return "\n".join(parts)


def half_rate(o: Outcome) -> str:
    rows = []
    for workers in o.plan.workers:
        for backend, database in _paced_cells(o):
            for family in o.plan.families:
                p = _paced(o, backend, database, family, workers)
                if p is None:
                    continue
                ok = "✓" if p.p99_ms < TARGET_P99_MS else "✗"
                label = backend.label
                if database == TMPFS:
                    label, ok = f"{label} on tmpfs (control)", f"({ok})"
                rows.append(
                    f"| {workers} | {label} | {family.provider} | {p.asked:,.0f}"
                    f" | {p.achieved:,.0f} | {p.p50_ms:.1f} | {p.p99_ms:.1f} | {p.max_ms:.1f}"
                    f" | {ok} | {_machine(p.machine)} | {_slow_commits(p.slow_commits_ms)} |"
                )
    if not rows:
        return ""
    return f"""## Latency at half the maximum rate

wrk 4 has no fixed-rate mode (that is wrk2, not installed), so the paced phase is wrk with a
Lua timetable: {o.plan.paced_connections} connections, each its own wrk thread, each sending
its requests at fixed intervals through `delay()`; together they ask for {HALF:g} × the
median saturated rate of that cell (the rates in the table above), for
{o.plan.paced_s:g} s. Latency is counted from when a request was due, not from when it
left, so a server that falls behind shows it (no coordinated omission, as in wrk2). Target:
p99 under {TARGET_P99_MS:g} ms.

The machine column is what the machine itself did during the run (bench/ingest/hiccups.py):
the longest a thread of the benchmark that asked to sleep 1 ms overslept (a hiccup: the machine
held every ready thread, the server's too, that long), all the oversleeping beyond 20 ms added
up, the share of the cores the hypervisor gave to other guests (steal), and the longest a 4 KB
append, made durable every 50 ms beside the SQLite files, took to sync (the disk: a stall there
holds every commit on it, whoever makes it; where PostgreSQL's data lies: [Method](#method)).
A server latency no longer than the longest hiccup or sync may be the machine's. The last
column is the server's side of it: stemhook logs every commit slower than
{SLOW_COMMIT_S * 1000:g} ms (app/ingest/committer.py), and every request waiting behind such a
commit waits for it too.

The control row, SQLite on tmpfs, is a second stemhook server (1 worker, its own database in
/dev/shm, synchronous=FULL) paced at the rate of the durable SQLite row of the same family
above, after that family's durable runs: its syncs cost nothing and never stall, so it is what
stemhook and the machine do at that rate without the disk. It is not durable and not a target
cell; the difference between the two rows is the disk's.

| workers | backend | family | asked req/s | got req/s | p50 ms | p99 ms | max ms | p99 < 50 |\
 machine: hiccup ms (longest · beyond 20) · steal · longest sync ms |\
 commits over {SLOW_COMMIT_S * 1000:g} ms (longest ms) |
|---|---|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}
"""


def growth(o: Outcome) -> str:
    rows = []
    full = f"{o.plan.growth_jobs:,} jobs"
    for backend in o.plan.backends:
        for family in o.plan.growth_families:
            cell = _growth_cell(backend, family)
            empty = figure(o.runs, database="empty", **cell)
            filled = figure(o.runs, database=full, **cell)
            change = ratio(o.runs, {**cell, "database": full}, {**cell, "database": "empty"})
            if empty is None or filled is None:
                continue
            rows.append(
                f"| {backend.label} | {family.provider} | {_fig(empty)} | {_fig(filled)}"
                f" | {spread(change)} |"
            )
    if not rows:
        return ""
    return f"""## Growth: an empty database against {full}

The same saturating load ({o.plan.connections[-1]} connections), 1 worker, on a fresh
database and on a copy of bench/query_data.py's fill ({full} over 90 days with their
deliveries, links and outputs, cached between runs as `make bench-query` keeps it), the two
servers measured in alternation.
Flat means the filled database keeps at least {FLAT:g} of the empty one's rate.

| backend | family | empty: req/s (p50/p99 ms) | {full}: req/s (p50/p99 ms) | ratio filled ÷ empty |
|---|---|---|---|---|
{chr(10).join(rows)}
"""


def parsers(o: Outcome) -> str:
    if not o.parser_costs:
        return ""
    rows = [
        f"| {c.family.provider} | {c.family.fixture.name} | {c.size:,} | {c.parse_callback_us:.0f}"
        f" | {c.decode_us:.0f} | {c.parse_callback_us - c.decode_us:.0f}"
        f" | {c.parse_callback_us / c.decode_us:.2f} |"
        for c in o.parser_costs
    ]
    return f"""## Parser cost per payload

In process, timeit, best of 7 repeats of ≥ 0.2 s each, µs per payload: stemhook's
`registry.parse_callback` (decode, detect, normalize into frozen jobs) against the bare decode
of the parse-only reference (`xmltodict.parse(body, xml_attribs=False, disable_entities=True,
expat=<DTD-refusing shim>)`, or `orjson.loads`).

| family | fixture | bytes | parse_callback µs | bare decode µs | normalization adds µs | ratio |
|---|---|---|---|---|---|---|
{chr(10).join(rows)}
"""


def cpu_budget(o: Outcome) -> str:
    """CPU per request of every target at 1 worker on SQLite, against what the target rate
    leaves: the figures that say how far the target is, and where a gap comes from."""
    rows = []
    for family in o.plan.families:
        cell = {"phase": "ingest", "family": family.provider, "workers": 1}
        bare, parse = (_cpu(select(o.runs, target=name, **cell)) for name in ("bare", "parse"))
        hook = _cpu(select(o.runs, target="stemhook", backend=str(Backend.SQLITE), **cell))
        parse_rate = figure(o.runs, target="parse", **cell)
        if bare is None or parse is None or hook is None or parse_rate is None:
            continue
        rate = TARGET_RATIO * parse_rate.rate
        processes = " + ".join(f"{us:.0f}" for us in hook.processes)
        rows.append(
            f"| {family.provider} | {bare.server:.0f} · {bare.wrk:.0f} | {parse.server:.0f} ·"
            f" {parse.wrk:.0f} | {processes} = {hook.server:.0f} · {hook.wrk:.0f} | {rate:,.0f}"
            f" | {1e6 / rate:.0f} | {o.facts.cores * 1e6 / rate - hook.wrk:.0f} |"
        )
    if not rows:
        return ""
    return f"""## CPU per request, and what the target leaves

CPU time per answered request during the saturating runs above (1 worker, SQLite; median
over rounds; µs; from /proc and wrk's resource usage): the server's processes, busiest first
(stemhook's: its web process and its writer process, in either order), and wrk's own. At
{TARGET_RATIO} of the parse reference's rate each process can spend at most one core's second
over that many requests, and all of stemhook's processes together what {o.facts.cores} cores
leave after wrk.

{_CPU_HEAD}
{chr(10).join(rows)}
"""


_CPU_HEAD = (
    "| family | bare: server · wrk | parse: server · wrk | stemhook: processes = together · wrk"
    " | target req/s | per process at most | together at most |\n|---|---|---|---|---|---|---|"
)


def _cpu(runs: list[Run]) -> Cpu | None:
    measured = [run.cpu for run in runs if run.cpu is not None]
    if not measured:
        return None
    count = max(len(cpu.processes) for cpu in measured)
    processes = tuple(
        statistics.median(cpu.processes[i] for cpu in measured if len(cpu.processes) > i)
        for i in range(count)
    )
    return Cpu(processes, statistics.median(cpu.wrk for cpu in measured))


def where_time_goes(o: Outcome) -> str:
    if o.profile is None or o.profile_family is None:
        return """## Where the time goes

_No profile in this run: `python -m bench.ingest --profile [FAMILY]` records one with py-spy
and fills this section._
"""
    parts = [
        "## Where the time goes\n",
        f"py-spy on stemhook (1 worker: its web process and its writer process,"
        f" {o.plan.backends[0].label}) under saturating {o.profile_family.provider} load"
        f" (`--profile {o.profile_family.provider}`): {o.plan.profile_s} s of wall-clock samples,"
        f" idle ones included, then {o.plan.profile_s} s of only the samples holding their"
        " process's GIL; 100 Hz, by function, each process's main thread. Shares are of that"
        " thread's wall samples. Idle: in the web process a `Runner.run` leaf (no Python"
        " running: uvloop waiting for I/O or in its own C code), in the writer process"
        " `_Inbox._receive` (waiting for submissions). In the endpoint: below the callback"
        " endpoint `receive`; around it: the rest of the busy time (uvicorn's protocol, the"
        " middleware stack, routing, the answer). Inclusive frames: stemhook's own functions and"
        " the library functions they call directly. Leaf: the innermost Python frame; where the"
        " writer's leaf is a statement or a commit, wall time not holding the GIL is SQLite's or"
        " PostgreSQL's own work or the fsync.\n",
    ]
    p = o.profile
    parts.append(
        f"CPU, read from /proc during the wall recording: stemhook's processes used"
        f" {p.total_cpu:.0%} of a core at {p.rate:,.0f} req/s,"
        f" {p.cpu_us_per_request(p.total_cpu):.0f} µs per request; "
        + ", ".join(
            f"the {t.process} {t.cpu:.0%} ({p.cpu_us_per_request(t.cpu):.0f} µs per request)"
            for t in p.processes
        )
        + ".\n"
    )
    for profile in p.processes:
        parts.append(f"**{profile.process}** ({profile.samples} samples): {breakdown(profile)}\n")
        parts.append("| inclusive | frame | | leaf: wall | GIL | frame |")
        parts.append("|---|---|---|---|---|---|")
        for i in range(max(len(profile.inclusive), len(profile.leaves))):
            left = (
                f"{profile.inclusive[i][1]:.1%} | `{profile.inclusive[i][0]}`"
                if i < len(profile.inclusive)
                else " | "
            )
            right = " | | "
            if i < len(profile.leaves):
                frame, wall, gil = profile.leaves[i]
                right = f"{wall:.1%} | {gil:.1%} | `{frame}`"
            parts.append(f"| {left} | | {right} |")
        parts.append("")
    parts.append("_What earlier profiles led to: [docs/decisions/](docs/decisions/README.md)._\n")
    return "\n".join(parts)


# --- helpers ------------------------------------------------------------------------------


def _cell(family: Family, workers: int) -> dict[str, object]:
    return {"family": family.provider, "workers": workers}


def stemhook_ratio(
    runs: list[Run], family: Family, backend: Backend, workers: int, reference: str
) -> Ratio | None:
    cell = {"phase": "ingest", **_cell(family, workers)}
    stemhook = {**cell, "target": "stemhook", "backend": str(backend)}
    return ratio(runs, stemhook, {**cell, "target": reference})


def _growth_cell(backend: Backend, family: Family) -> dict[str, object]:
    return {"phase": "growth", "target": "stemhook", "backend": str(backend)} | {
        "family": family.provider,
        "workers": 1,
    }


def half_rate_verdict(o: Outcome) -> str:
    found = []
    controls = []
    for backend, database in _paced_cells(o):
        for workers in o.plan.workers:
            for family in o.plan.families:
                p = _paced(o, backend, database, family, workers)
                if p is None:
                    continue
                if database == TMPFS:
                    controls.append(f"{family.provider} {p.p99_ms:.1f}")
                else:
                    found.append(p.p99_ms < TARGET_P99_MS)
    if not found:
        return ""
    control = (
        f"; p99 ms of the control on tmpfs, where the disk's flush cannot stall (SQLite, 1"
        f" worker): {', '.join(controls)}"
        if controls
        else ""
    )
    return (
        f"p99 under {TARGET_P99_MS:g} ms at half the maximum rate: {sum(found)} of {len(found)}"
        f" cells{control} ([details](#latency-at-half-the-maximum-rate))."
    )


def _paced_cells(o: Outcome) -> list[tuple[Backend, str]]:
    """The paced table's backends, each durable target followed by its control where run."""
    cells = []
    for backend in o.plan.backends:
        cells.append((backend, "empty"))
        if any(run.backend == backend and run.database == TMPFS for run in o.runs):
            cells.append((backend, TMPFS))
    return cells


def _paced(
    o: Outcome, backend: Backend, database: str, family: Family, workers: int
) -> Paced | None:
    return paced(
        o.runs,
        target="stemhook",
        backend=str(backend),
        database=database,
        **_cell(family, workers),
    )


def growth_verdict(o: Outcome) -> str:
    full = f"{o.plan.growth_jobs:,} jobs"
    changes = []
    for backend in o.plan.backends:
        for family in o.plan.growth_families:
            cell = _growth_cell(backend, family)
            change = ratio(o.runs, {**cell, "database": full}, {**cell, "database": "empty"})
            if change is not None:
                changes.append(f"{backend.label} {family.provider} {change.median:.2f}")
    if not changes:
        return ""
    return f"Rate with {full} ÷ empty database (flat: ≥ {FLAT:g}): " + ", ".join(changes) + "."


def _machine(m: Machine | None) -> str:
    if m is None:
        return "not measured"
    return (
        f"{m.longest_hiccup_ms:.1f} · {m.hiccup_ms_over_20:.0f} · {m.steal_pct:.1f} %"
        f" · {m.longest_sync_ms:.1f}"
    )


def _slow_commits(durations_ms: tuple[float, ...]) -> str:
    return f"{len(durations_ms)} ({max(durations_ms):.0f})" if durations_ms else "0"


def _fig(f: Figure | None) -> str:
    if f is None:
        return "–"
    at = "/".join(str(count) for count in f.connections)
    return f"{f.rate:,.0f} @{at} ({f.p50_ms:.1f}/{f.p99_ms:.1f})"


def _rate(f: Figure | None) -> str:
    return "–" if f is None else f"{f.rate:,.0f}"


def counts(counts: tuple[int, ...]) -> str:
    return " and ".join(", ".join(str(count) for count in counts).rsplit(", ", 1))


def short(r: Ratio | None) -> str:
    return "–" if r is None else f"{r.median:.2f}"


def spread(r: Ratio | None) -> str:
    return "–" if r is None else f"{r.median:.2f} ({r.low:.2f}–{r.high:.2f})"

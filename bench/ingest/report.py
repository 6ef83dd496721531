"""BENCHMARKS.md: the figures of one run, how they were taken, and on what.

The file is rewritten by every full run; everything below NOTES_MARK is written by hand (what
the figures mean, what was tried) and kept across rewrites, and so is the reliability section
above it, between RELIABILITY_BEGIN and RELIABILITY_END (written by bench/reliability.py).
"""

from __future__ import annotations

from pathlib import Path

from bench.ingest.databases import Backend
from bench.ingest.facts import Facts
from bench.ingest.outcome import Outcome
from bench.ingest.tables import (
    TARGET_RATIO,
    by_connections,
    counts,
    cpu_budget,
    growth,
    growth_verdict,
    half_rate,
    half_rate_verdict,
    ingest,
    parsers,
    short,
    stemhook_ratio,
    where_time_goes,
)
from bench.ingest.wrk import TIMEOUT_S

NOTES_MARK = "<!-- Hand-written below this line: kept when the benchmark rewrites this file. -->"
RELIABILITY_BEGIN = "<!-- Reliability figures: written by `python -m bench.reliability`. -->"
RELIABILITY_END = "<!-- End of the reliability figures. -->"
DEFAULT_NOTES = """
## Notes

_What the figures mean and what was tried: written by hand, kept across runs._
"""


def render(outcome: Outcome, notes: str, reliability: str = "") -> str:
    sections = [
        _header(outcome),
        _summary(outcome),
        ingest(outcome),
        by_connections(outcome),
        cpu_budget(outcome),
        half_rate(outcome),
        growth(outcome),
        parsers(outcome),
        where_time_goes(outcome),
        _method(outcome),
        _machine(outcome.facts),
        reliability,
        NOTES_MARK + "\n" + notes.strip("\n") + "\n",
    ]
    return "\n".join(section for section in sections if section)


def kept_notes(path: Path) -> str:
    if path.exists():
        text = path.read_text()
        if NOTES_MARK in text:
            return text.split(NOTES_MARK, 1)[1]
    return DEFAULT_NOTES


def kept_reliability(path: Path) -> str:
    return reliability_section(path.read_text()) if path.exists() else ""


def reliability_section(report: str) -> str:
    """The report's reliability section, markers and final newline included; "" if none."""
    if RELIABILITY_BEGIN in report and RELIABILITY_END in report:
        section = report.split(RELIABILITY_BEGIN, 1)[1].split(RELIABILITY_END, 1)[0]
        return RELIABILITY_BEGIN + section + RELIABILITY_END + "\n"
    return ""


# --- sections -----------------------------------------------------------------------------


def _header(o: Outcome) -> str:
    f = o.facts
    tree = (
        f"commit `{f.commit}`"
        if not f.uncommitted
        else f"commit `{f.commit}` plus {len(f.uncommitted)} uncommitted change(s) in app/ "
        f"(`git diff HEAD` sha256 `{f.diff_sha}`: "
        + ", ".join(f"`{line.strip()}`" for line in f.uncommitted)
        + ")"
    )
    changed = (
        f"\n**The code under test changed during this run** (fingerprint `{f.code}` at the start,"
        f" `{f.code_at_end}` at the end): servers started at different times ran different code."
        " Rerun on a quiet tree before comparing.\n"
        if f.code_changed
        else ""
    )
    return f"""# Benchmarks

Ingest throughput and latency of stemhook's callback endpoints, measured side by side with two
references on the same machine. Written by `{o.command}` on {f.date}, {o.scope} run,
at {tree}; code fingerprint `{f.code}` (sha256 of app/, migrations/ and pyproject.toml as
they were on disk, the same at the end of the run unless said below).
{changed}
The code under test is being optimized: figures from another commit are other figures. Compare
ratios, not absolute rates, between runs (see [Method](#method)).
"""


def _summary(o: Outcome) -> str:
    rows, verdicts = [], []
    cells = [(b, w) for b in o.plan.backends for w in o.plan.workers]
    head = " | ".join(f"{b.label}, {w} worker{'s' * (w > 1)}" for b, w in cells)
    for family in o.plan.families:
        values = []
        for backend, workers in cells:
            of_parse = stemhook_ratio(o.runs, family, backend, workers, "parse")
            of_bare = stemhook_ratio(o.runs, family, backend, workers, "bare")
            values.append(f"**{short(of_parse)}** of parse · {short(of_bare)} of bare")
            if backend is Backend.SQLITE and workers == 1 and of_parse is not None:
                met = of_parse.median >= TARGET_RATIO
                verdicts.append(f"{family.provider} {of_parse.median:.2f} {'✓' if met else '✗'}")
        rows.append(f"| {family.provider} | " + " | ".join(values) + " |")
    target = (
        f"Target: at least {TARGET_RATIO} of the parse-only reference for every family on SQLite"
        f" with 1 worker, synchronous=FULL: " + (", ".join(verdicts) or "not measured") + "."
    )
    return f"""## Summary

stemhook's ingest rate as a share of the two references' (median over rounds of the ratio
measured within each round; the full figures follow):

| family | {head} |
|---|{"---|" * len(cells)}
{chr(10).join(rows)}

{target}
{half_rate_verdict(o)}
{growth_verdict(o)}
No run had an answer other than 2xx, a socket error or a timeout: the harness stops at the
first one. Every acknowledged delivery was found stored afterwards ([Method](#method)).
"""


def _method(o: Outcome) -> str:
    stored = [
        f"{ledger.server}: {ledger.acknowledged:,} acknowledged, "
        f"{ledger.stored.outcomes.get('accepted', 0):,} stored"
        for ledger in o.ledgers
        if ledger.stored is not None
    ]
    fixtures = "\n".join(
        f"- `{f.provider}`: {f.label}, `tests/fixtures/{f.fixture.parent.name}/{f.fixture.name}`"
        f" ({len(f.body()):,} bytes), POST `{f.path}` as `{f.content_type}`"
        for f in o.plan.families
    )
    pg = o.facts.postgres_settings
    return f"""## Method

Load: `wrk` on loopback with a Lua script generated from each family's fixture
(bench/ingest/lua.py). Every request carries a job id nobody sent before: a random prefix per
wrk run, the wrk thread and a counter, in the fixture id's own shape and length, so every
request is a new job (a real insert), never a cheap duplicate, also across rounds and reruns.
{_priority(o.plan.generator_idle)}
{fixtures}

Servers: `python -m app serve --port P --workers N` (what `stemhook serve` runs: migrations,
then uvicorn with httptools and uvloop from uvicorn[standard], proxy headers, access log off)
with `STEMHOOK_DATABASE_URL` pointing at a database of its own, fresh for each server, and no
other STEMHOOK_* setting (no callback token, no Suno signature); the references in
bench/ingest/reference.py run through the same `uvicorn.run` call with the same worker count.
The servers are started from a scratch directory, so a `.env` in the checkout changes nothing.
All servers of a worker count run at once; only the one under load is busy.

Interleaving: within a round each target (bare, parse, stemhook per backend) gets one run,
one after another; the next round starts with the next target. Ratios are taken within a
round, then the median over rounds is reported: absolute rates drift ±15–30 % over tens of
minutes on this shared machine, ratios measured side by side far less.

Connections: each target is loaded at {counts(o.plan.connections)} connections in turn, and
its rate in a round is its best: the saturated rate of a server is the most it answers
however many requests are in flight (as TechEmpower reports each framework's best of its
concurrency levels). The references are best at the fewest; stemhook, which answers a batch
after one commit, needs more requests in flight to keep its web process and its writer
process busy at once. The rates at each count are in [By connection count](#by-connection-count).

With 2 workers, how wrk's keep-alive connections spread over the two worker processes is
decided when they connect, by whichever worker accepts first, and differs from run to run:
2-worker rates and ratios vary more (see their ranges).

Errors: any answer other than 2xx (wrk's "Non-2xx or 3xx responses"; the paced script counts
every non-2xx itself), any socket error and any request slower than {TIMEOUT_S} s stops the
benchmark with wrk's output.

Durability: SQLite runs with `STEMHOOK_SQLITE_SYNCHRONOUS=FULL` (the default, set explicitly):
the WAL is synced before a commit returns, and stemhook answers 200 only after its commit, so
every acknowledged delivery survives a power cut, not only a crash. NORMAL would sync only at
checkpoints: faster, but a power cut could lose deliveries already acknowledged, which the
providers would never send again. stemhook's writer process commits whatever arrived together
in one transaction (group commit): one sync per batch, not per request. The SQLite files lie
on {o.facts.scratch_filesystem}; a 4 KB append + fdatasync there, one after another before the
run: {o.facts.fdatasync}. A stall of S ms during a paced run holds the requests due in its
first S − 50 ms past 50 ms: in a {o.plan.paced_s:g} s run, one stall of
{50 + 10 * o.plan.paced_s:g} ms or more puts p99 at 50 ms or over (the paced control's file
lies on /dev/shm instead). PostgreSQL runs with
synchronous_commit={pg.get("synchronous_commit")}, fsync={pg.get("fsync")}
(wal_sync_method={pg.get("wal_sync_method")}): durable at commit as well. Its data directory
lies on {o.facts.postgres_filesystem}.
After each stemhook server stopped, its database was checked: at least as many accepted
deliveries as requests wrk saw acknowledged (more when requests were in flight as a run ended),
each a new job, no duplicate, rejected or orphaned delivery:

{chr(10).join(f"- {line}" for line in stored)}

### Reproduce

```sh
make bench            # = .venv/bin/python -m bench.ingest --profile: ~30 minutes
.venv/bin/python -m bench.ingest --quick      # ~4 minutes, 1 worker, prints only
.venv/bin/python -m bench.ingest --family tencent-ci --backend sqlite --workers 1
.venv/bin/python -m bench.ingest --profile suno --no-growth --no-parsers
```

This run: `{o.command}`. Scratch files (server logs, generated Lua scripts, the raw profile,
results.json with every run) were in `{o.workdir}`. One run by hand, against a server started
as above:

```sh
.venv/bin/python -c 'from bench.ingest import lua, payloads; print(lua.script(
    payloads.family("tencent-ci"), lua.Mode.SATURATE))' > tencent-ci-saturate.lua
wrk -t1 -c{o.plan.connections[-1]} -d{o.plan.duration_s:g}s --timeout={TIMEOUT_S}s \\
    -s tencent-ci-saturate.lua http://127.0.0.1:P -- $(openssl rand -hex 4) \\
    /callbacks/tencent-ci
```
"""


def _priority(idle: bool) -> str:
    if not idle:
        return "wrk runs at normal priority, beside the servers.\n"
    return (
        "**Saturating wrk runs at SCHED_IDLE** (`--generator-idle`, `chrt --idle 0`): it gets"
        " only CPU time no server process wants, and its wake-ups preempt none of them. The paced"
        " runs' wrk stays at normal priority (a sender kept waiting would send late, and count"
        " its own lateness as the server's latency).\n"
    )


def _machine(f: Facts) -> str:
    packages = ", ".join(f"{name} {version}" for name, version in f.packages.items())
    load = "; ".join(f.load)
    return f"""## Machine

- {f.cores} cores ({f.cpu}), {f.memory_gb:.0f} GB, {f.system}; shared with other work, so
  the load average is part of the figures: {load}
- Python {f.python}, SQLite {f.sqlite}, PostgreSQL {f.postgresql} (shared_buffers
  {f.postgres_settings.get("shared_buffers")}), {f.wrk}
- {packages}
"""

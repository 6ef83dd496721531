"""BENCHMARKS.md: the figures of one run, how they were taken, and on what.

Every full run overwrites the whole file: nothing of an earlier run, and nothing written by hand,
is kept. Its last sections, each between its own markers (LATER), are left pending here and
filled by bench/reliability.py, bench/retention.py, bench/mirror/, bench/polling/ and
bench/console.py, which `make bench` runs next. What the figures decided lives in
docs/decisions/, not in this file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.ingest.databases import Backend
from bench.ingest.facts import Facts
from bench.ingest.outcome import Outcome
from bench.ingest.scaling import section as postgresql_scaling
from bench.ingest.servers import REPO
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

REPORT = REPO / "BENCHMARKS.md"


@dataclass(frozen=True)
class Section:
    """A section another benchmark writes into the report between its own markers, so that it
    replaces only its own figures (bench/{name}.py)."""

    name: str
    heading: str

    @property
    def begin(self) -> str:
        writer = f"`python -m bench.{self.name}`"
        return f"<!-- {self.name.capitalize()} figures: written by {writer}. -->"

    @property
    def end(self) -> str:
        return f"<!-- End of the {self.name} figures. -->"

    def wrap(self, body: str) -> str:
        """The whole section: markers, heading, then `body`."""
        return f"{self.begin}\n## {self.heading}\n\n{body.rstrip()}\n{self.end}\n"

    def pending(self) -> str:
        return self.wrap(
            f"_Not measured yet in this run: `python -m bench.{self.name}`, which `make bench`"
            " runs after the ingest benchmark, writes its figures here._"
        )

    def write_into(self, path: Path, section: str) -> None:
        """`placed` into the markdown file at `path` (made if there is none)."""
        path.write_text(self.placed(path.read_text() if path.exists() else "", section))

    def placed(self, report: str, section: str) -> str:
        """The report with this section replaced by `section`, or added at its end."""
        if self.begin in report and self.end in report:
            before, _, rest = report.partition(self.begin)
            return before + section + rest.partition(self.end)[2].removeprefix("\n")
        return report.rstrip("\n") + "\n\n" + section


RELIABILITY = Section("reliability", "Reliability: faults, hostile input, fuzzing")
RETENTION = Section("retention", "Retention: 100,000 bodies out of 2,000,000 deliveries")
MIRROR = Section("mirror", "Mirroring: throughput, and callback latency during a download")
POLLING = Section("polling", "Polling: polls per second, and ingest while polls are due")
CONSOLE = Section("console", "Console: page latency at 1,000,000 jobs")
# In the order they follow the ingest report, which is the order a run appends them in.
LATER = (RELIABILITY, RETENTION, MIRROR, POLLING, CONSOLE)


def render(outcome: Outcome, pending: tuple[Section, ...] = ()) -> str:
    sections = [
        _header(outcome),
        _summary(outcome),
        ingest(outcome),
        by_connections(outcome),
        cpu_budget(outcome),
        postgresql_scaling(outcome),
        half_rate(outcome),
        growth(outcome),
        parsers(outcome),
        where_time_goes(outcome),
        _method(outcome),
        _machine(outcome.facts),
        *(section.pending() for section in pending),
    ]
    return "\n".join(section for section in sections if section)


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
Each `make bench` overwrites this whole file with its own run; what earlier runs decided, and
the measurements behind it, are in [docs/decisions/](docs/decisions/README.md). Figures from
another commit or machine are other figures: compare ratios, not absolute rates.
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

Load: `wrk` on loopback, with a Lua script generated from each family's fixture
(bench/ingest/lua.py); every request carries a job id nobody sent before, so each is a real
insert, never a cheap duplicate. {_priority(o.plan.generator_idle)}
{fixtures}

Servers: `python -m app serve --port P --workers N` (what `stemhook serve` runs), each on a
fresh database of its own with no other STEMHOOK_* setting, beside two references run through
the same `uvicorn.run` call (bench/ingest/reference.py): *bare* reads the body and answers 200,
*parse* also decodes it as stemhook does. Within a round each target runs once at each of
{counts(o.plan.connections)} connections and its rate is its best; ratios are taken within a
round and the median over rounds is reported, because absolute rates drift by ±15–30 % on a
shared machine and side-by-side ratios far less. Any non-2xx answer, socket error or request
slower than {TIMEOUT_S} s stops the run.

Durability: SQLite at synchronous=FULL in WAL mode, its files on {o.facts.scratch_filesystem}
(a 4 KB append + fdatasync there, before the run: {o.facts.fdatasync}); PostgreSQL at
synchronous_commit={pg.get("synchronous_commit")}, fsync={pg.get("fsync")}
(wal_sync_method={pg.get("wal_sync_method")}), its data on {o.facts.postgres_filesystem}.
stemhook answers only after its commit, so every acknowledged delivery is durable
([why](docs/decisions/0005-durability-settings.md)). After each stemhook server stopped, its
database held at least as many accepted deliveries as wrk saw acknowledged, each a new job, none
duplicated, rejected or orphaned:

{chr(10).join(f"- {line}" for line in stored)}

How each table is measured, and every option: [bench/README.md](bench/README.md). Reproduce
with `make bench` (~30 minutes: this file, then its reliability section) or, printing only,
`.venv/bin/python -m bench.ingest --quick` (~4 minutes). This run: `{o.command}`, scratch
files (server logs, Lua scripts, raw profile, results.json) in `{o.workdir}`.
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

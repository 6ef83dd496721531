"""Ingest beside background work: whether the background process (the poller, the mirror) moves
saturating ingest beyond noise. Used by bench.polling (polls due) and bench.mirror (files
streaming).

Rounds of saturating wrk runs of one family's callbacks (bench/ingest/lua.py) on a running
server, each round one run while the background is busy and two while it is idle (a and b),
in an order that rotates from round to round. The ratios are taken within a round, busy ÷ the
mean of the two idle runs and idle b ÷ idle a (the noise), because absolute rates drift on a
shared machine and side-by-side ratios far less; the report gives their medians and ranges.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from bench.ingest import lua, wrk
from bench.ingest.payloads import Family


@dataclass(frozen=True)
class Kinds:
    """The names of a round's runs: `busy`, and `idle` twice (a and b)."""

    busy: str
    idle: str

    @property
    def idle_a(self) -> str:
        return f"{self.idle} (a)"

    @property
    def idle_b(self) -> str:
        return f"{self.idle} (b)"

    def order(self, number: int) -> tuple[str, ...]:
        """Round `number`'s runs: each kind goes first in turn, so none is always the warmest."""
        kinds = (self.busy, self.idle_a, self.idle_b)
        start = number % len(kinds)
        return kinds[start:] + kinds[:start]


@dataclass(frozen=True)
class Rounds:
    family: Family
    rounds: int
    duration_s: float
    connections: int
    warmup_s: float = 1.0


@dataclass(frozen=True)
class Run:
    kind: str
    round: int
    load: wrk.Load
    done: float  # the background's work during the run, in the caller's unit (polls, MiB)


@dataclass(frozen=True)
class Beside:
    kinds: Kinds
    runs: tuple[Run, ...]

    def busy_over_idle(self) -> list[float]:
        """Per round: the busy run's rate ÷ the mean of its two idle runs'."""
        k = self.kinds
        return [r[k.busy] / statistics.mean((r[k.idle_a], r[k.idle_b])) for r in self._rounds()]

    def noise(self) -> list[float]:
        """Per round: the second idle run's rate ÷ the first's."""
        return [r[self.kinds.idle_b] / r[self.kinds.idle_a] for r in self._rounds()]

    def idle_rate(self) -> float:
        """The median rate of the idle runs."""
        return statistics.median(r.load.rate for r in self.runs if r.kind != self.kinds.busy)

    def of(self, kind: str) -> list[Run]:
        return [r for r in self.runs if r.kind == kind]

    def _rounds(self) -> list[dict[str, float]]:
        rounds: dict[int, dict[str, float]] = {}
        for r in self.runs:
            rounds.setdefault(r.round, {})[r.kind] = r.load.rate
        return [rounds[number] for number in sorted(rounds)]


def measure(
    url: str,
    rounds: Rounds,
    kinds: Kinds,
    workdir: Path,
    *,
    during: Callable[[str], AbstractContextManager[None]],
    done: Callable[[], float],
    log: Callable[[str], None],
) -> Beside:
    """The rounds against the server at `url`; each run inside `during(kind)`, which makes the
    background busy or idle before it yields, and `done()` read before and after it."""
    family = rounds.family
    script = workdir / f"{family.provider}-{lua.Mode.SATURATE}.lua"
    script.write_text(lua.script(family, lua.Mode.SATURATE))

    def run(duration_s: float) -> wrk.Load:
        # A fresh invocation each time: its run prefix keeps every job id new.
        invocation = wrk.saturating(
            url,
            family.path,
            script,
            duration_s=duration_s,
            connections=rounds.connections,
            idle=False,
        )
        return wrk.run(invocation)

    run(rounds.warmup_s)
    runs = []
    for number in range(rounds.rounds):
        for kind in kinds.order(number):
            with during(kind):
                before = done()
                load = run(rounds.duration_s)
                runs.append(Run(kind, number, load, done() - before))
            log(
                f"r{number + 1} {kind:16} {load.rate:8,.0f} req/s  p50 {load.p50_ms:6.2f}"
                f"  p99 {load.p99_ms:6.2f} ms; {runs[-1].done / load.duration_s:6.1f}/s meanwhile"
            )
    return Beside(kinds, tuple(runs))


def spread(values: list[float]) -> str:
    """Median (min–max)."""
    return f"{statistics.median(values):.3f} ({min(values):.3f}–{max(values):.3f})"


def noise_line(label: str, beside: Beside) -> str:
    k = beside.kinds
    return (
        f"{label}: ingest {k.busy} ÷ {k.idle} {spread(beside.busy_over_idle())},"
        f" {k.idle} ÷ {k.idle} (the noise) {spread(beside.noise())}"
    )


def tables(outcomes: list[tuple[str, Beside]], unit: str) -> list[str]:
    """The summary per backend, then each round (markdown lines); `unit` names `Run.done`."""
    summary, rounds = [], []
    for label, beside in outcomes:
        k = beside.kinds
        busy, idle = beside.of(k.busy), beside.of(k.idle_a) + beside.of(k.idle_b)
        summary.append(
            f"| {label} | {statistics.median(r.load.rate for r in idle):,.0f} |"
            f" {statistics.median(r.load.rate for r in busy):,.0f} |"
            f" {spread(beside.busy_over_idle())} | {spread(beside.noise())} |"
            f" {statistics.median(r.done / r.load.duration_s for r in busy):,.1f} |"
            f" {sum(r.done for r in idle):,.0f} |"
        )
        for number, ratio in enumerate(beside.busy_over_idle()):
            load = {r.kind: r.load for r in beside.runs if r.round == number}
            rounds.append(
                f"| {label} | {number + 1} | {load[k.busy].rate:,.0f} |"
                f" {load[k.idle_a].rate:,.0f} | {load[k.idle_b].rate:,.0f} | {ratio:.3f} |"
                f" {load[k.busy].p99_ms:.1f} | {load[k.idle_a].p99_ms:.1f} |"
            )
    k = outcomes[0][1].kinds
    return [
        f"| backend | {k.idle} req/s | {k.busy} req/s | {k.busy} ÷ {k.idle} |"
        f" {k.idle} b ÷ {k.idle} a (noise) | {unit}/s during {k.busy} | {unit} during {k.idle} |",
        "|---|---|---|---|---|---|---|",
        *summary,
        "",
        "Each round (req/s; p99 from when each request left, in ms):",
        "",
        f"| backend | round | {k.busy} | {k.idle} a | {k.idle} b | {k.busy} ÷ {k.idle} |"
        f" p99 {k.busy} | p99 {k.idle} a |",
        "|---|---|---|---|---|---|---|---|",
        *rounds,
    ]

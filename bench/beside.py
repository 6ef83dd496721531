"""Runs beside background work: whether the background process (the poller, the mirror) moves
ingest beyond noise. Used by bench.polling (polls due) and bench.mirror (files streaming).

Rounds of wrk runs of one family's callbacks (bench/ingest/lua.py) on a running server,
saturating (the figure: req/s) or paced at a fixed rate (the figures: p50 and p99 from when
each request was due), each round one run while the background is busy and two while it is
idle (a and b), in an order that rotates from round to round. The ratios are taken within a
round, busy ÷ the mean of the two idle runs and idle b ÷ idle a (the noise), because absolute
figures drift on a shared machine and side-by-side ratios far less; the report gives their
medians and ranges.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from bench.ingest import lua, wrk
from bench.ingest.hiccups import Machine, MachineWatch
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
    rate: float | None = None  # requests a second of paced runs; None: saturating runs


@dataclass(frozen=True)
class Run:
    kind: str
    round: int
    load: wrk.Load
    done: float  # the background's work during the run, in the caller's unit (polls, MiB)
    machine: Machine | None = None  # watched during paced runs only (bench/ingest/hiccups.py)


@dataclass(frozen=True)
class Figure:
    """One run's figure as the tables show it: `unit` heads its columns in the summary, `label`
    prefixes the kinds' names elsewhere, and `caption` says what it is."""

    label: str
    unit: str
    caption: str
    of: Callable[[Run], float]
    digits: int


def _paced(run: Run) -> wrk.Paced:
    assert run.load.paced is not None, "a saturating run has no latency from due time"
    return run.load.paced


def _machine(run: Run) -> Machine:
    assert run.machine is not None, "only paced runs are watched"
    return run.machine


RATE = Figure("", "req/s", "req/s", lambda run: run.load.rate, 0)
SENT_P99 = Figure(
    "p99 ", "p99 ms", "p99 from when each request left, in ms", lambda run: run.load.p99_ms, 1
)
P99 = Figure(
    "p99 ", "p99 ms", "p99 from when each request was due, in ms", lambda r: _paced(r).p99_ms, 1
)
P50 = Figure("p50 ", "p50 ms", "p50 likewise", lambda r: _paced(r).p50_ms, 1)
HICCUP = Figure(
    "hiccup ",
    "longest hiccup ms",
    "the longest hiccup, in ms",
    lambda run: _machine(run).longest_hiccup_ms,
    1,
)


@dataclass(frozen=True)
class Beside:
    kinds: Kinds
    runs: tuple[Run, ...]

    def busy_over_idle(self, figure: Figure = RATE) -> list[float]:
        """Per round: the busy run's figure ÷ the mean of its two idle runs'."""
        k = self.kinds
        return [
            r[k.busy] / statistics.mean((r[k.idle_a], r[k.idle_b])) for r in self._rounds(figure)
        ]

    def noise(self, figure: Figure = RATE) -> list[float]:
        """Per round: the second idle run's figure ÷ the first's."""
        return [r[self.kinds.idle_b] / r[self.kinds.idle_a] for r in self._rounds(figure)]

    def idle_rate(self) -> float:
        """The median rate of the idle runs."""
        return statistics.median(r.load.rate for r in self.runs if r.kind != self.kinds.busy)

    def of(self, kind: str) -> list[Run]:
        return [r for r in self.runs if r.kind == kind]

    def _rounds(self, figure: Figure) -> list[dict[str, float]]:
        rounds: dict[int, dict[str, float]] = {}
        for r in self.runs:
            rounds.setdefault(r.round, {})[r.kind] = figure.of(r)
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
    mode = lua.Mode.SATURATE if rounds.rate is None else lua.Mode.PACED
    script = workdir / f"{family.provider}-{mode}.lua"
    script.write_text(lua.script(family, mode))

    def run(duration_s: float) -> wrk.Invocation:
        # A fresh invocation each time: its run prefix keeps every job id new.
        if rounds.rate is None:
            return wrk.saturating(
                url,
                family.path,
                script,
                duration_s=duration_s,
                connections=rounds.connections,
                idle=False,
            )
        return wrk.paced(
            url,
            family.path,
            script,
            duration_s=duration_s,
            connections=rounds.connections,
            rate=rounds.rate,
        )

    wrk.run(run(rounds.warmup_s))
    runs = []
    for number in range(rounds.rounds):
        for kind in kinds.order(number):
            watch = None if rounds.rate is None else MachineWatch(workdir)
            with during(kind):
                before = done()
                with watch or nullcontext():
                    load = wrk.run(run(rounds.duration_s))
                machine = None if watch is None else watch.machine
                runs.append(Run(kind, number, load, done() - before, machine))
            latency, since = (load, "") if load.paced is None else (load.paced, " from due time")
            log(
                f"r{number + 1} {kind:16} {load.rate:8,.0f} req/s  p50 {latency.p50_ms:6.2f}"
                f"  p99 {latency.p99_ms:6.2f} ms{since};"
                f" {runs[-1].done / load.duration_s:6.1f}/s meanwhile"
            )
    return Beside(kinds, tuple(runs))


def spread(values: list[float]) -> str:
    """Median (min–max)."""
    return f"{statistics.median(values):.3f} ({min(values):.3f}–{max(values):.3f})"


def noise_line(
    label: str, beside: Beside, what: str = "ingest", figures: tuple[Figure, ...] = (RATE,)
) -> str:
    k = beside.kinds
    return f"{label}: {what} " + "; ".join(
        f"{f.label}{k.busy} ÷ {k.idle} {spread(beside.busy_over_idle(f))},"
        f" {f.label}{k.idle} ÷ {k.idle} (the noise) {spread(beside.noise(f))}"
        for f in figures
    )


def tables(
    outcomes: list[tuple[str, Beside]],
    unit: str,
    figures: tuple[Figure, ...] = (RATE,),
    also: tuple[Figure, ...] = (SENT_P99,),
) -> list[str]:
    """The summary per backend, then each round (markdown lines): the ratios of each of
    `figures`, and in each round `also` those of its busy and first idle run; `unit` names
    `Run.done`."""
    k = outcomes[0][1].kinds
    summary, rounds = [], []
    for label, beside in outcomes:
        busy, idle = beside.of(k.busy), beside.of(k.idle_a) + beside.of(k.idle_b)
        cells = []
        for f in figures:
            cells += [
                _median(f, idle),
                _median(f, busy),
                spread(beside.busy_over_idle(f)),
                spread(beside.noise(f)),
            ]
        cells += [
            f"{statistics.median(r.done / r.load.duration_s for r in busy):,.1f}",
            f"{sum(r.done for r in idle):,.0f}",
        ]
        summary.append(_row(label, cells))
        ratios = [beside.busy_over_idle(f) for f in figures]
        for number in range(len(ratios[0])):
            run = {r.kind: r for r in beside.runs if r.round == number}
            cells = [str(number + 1)]
            for f, ratio in zip(figures, ratios, strict=True):
                cells += [_value(f, run[kind]) for kind in (k.busy, k.idle_a, k.idle_b)]
                cells.append(f"{ratio[number]:.3f}")
            cells += [_value(f, run[kind]) for f in also for kind in (k.busy, k.idle_a)]
            rounds.append(_row(label, cells))
    summary_heads = [
        head
        for f in figures
        for head in (
            f"{k.idle} {f.unit}",
            f"{k.busy} {f.unit}",
            f"{f.label}{k.busy} ÷ {k.idle}",
            f"{f.label}{k.idle} b ÷ {k.idle} a (noise)",
        )
    ] + [f"{unit}/s during {k.busy}", f"{unit} during {k.idle}"]
    round_heads = ["round"]
    for f in figures:
        round_heads += [f"{f.label}{kind}" for kind in (k.busy, f"{k.idle} a", f"{k.idle} b")]
        round_heads.append(f"{f.label}{k.busy} ÷ {k.idle}")
    round_heads += [f"{f.label}{kind}" for f in also for kind in (k.busy, f"{k.idle} a")]
    captions = "; ".join(f.caption for f in figures + also)
    return [
        _row("backend", summary_heads),
        _rule(summary_heads),
        *summary,
        "",
        f"Each round ({captions}):",
        "",
        _row("backend", round_heads),
        _rule(round_heads),
        *rounds,
    ]


def _median(figure: Figure, runs: list[Run]) -> str:
    return f"{statistics.median(figure.of(r) for r in runs):,.{figure.digits}f}"


def _value(figure: Figure, run: Run) -> str:
    return f"{figure.of(run):,.{figure.digits}f}"


def _row(first: str, cells: list[str]) -> str:
    return f"| {first} | " + " | ".join(cells) + " |"


def _rule(heads: list[str]) -> str:
    return "|---" * (len(heads) + 1) + "|"

"""From runs to the figures the report shows: medians over rounds, ratios within rounds."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass

from bench.ingest.hiccups import Machine
from bench.ingest.run import Run


@dataclass(frozen=True)
class Figure:
    """One target in one cell: medians over its rounds."""

    rate: float
    p50_ms: float
    p99_ms: float
    runs: int
    connections: tuple[int, ...]  # the wrk connection counts its rounds' runs were at


@dataclass(frozen=True)
class Ratio:
    """Of two targets' rates, taken within each round: the median and the spread."""

    median: float
    low: float
    high: float


@dataclass(frozen=True)
class Paced:
    asked: float  # half the median saturated rate (of the durable target, for the control)
    achieved: float
    p50_ms: float  # from when each request was due
    p99_ms: float
    max_ms: float
    machine: Machine | None  # what the machine itself did meanwhile
    slow_commits_ms: tuple[float, ...]  # the commits stemhook logged as slow meanwhile


def select(runs: Iterable[Run], **criteria: object) -> list[Run]:
    return [run for run in runs if all(getattr(run, k) == v for k, v in criteria.items())]


def figure(runs: Iterable[Run], **criteria: object) -> Figure | None:
    chosen = select(runs, **criteria)
    if not chosen:
        return None
    return Figure(
        rate=statistics.median(run.load.rate for run in chosen),
        p50_ms=statistics.median(run.load.p50_ms for run in chosen),
        p99_ms=statistics.median(run.load.p99_ms for run in chosen),
        runs=len(chosen),
        connections=tuple(sorted({run.connections for run in chosen})),
    )


def ratio(
    runs: list[Run], numerator: dict[str, object], denominator: dict[str, object]
) -> Ratio | None:
    """numerator's rate over denominator's, round by round (both select one run per round)."""
    over = {run.round: run.load.rate for run in select(runs, **denominator)}
    ratios = [
        run.load.rate / over[run.round] for run in select(runs, **numerator) if over.get(run.round)
    ]
    if not ratios:
        return None
    return Ratio(statistics.median(ratios), min(ratios), max(ratios))


def paced(runs: list[Run], **criteria: object) -> Paced | None:
    chosen = select(runs, phase="paced", **criteria)
    if not chosen or chosen[0].load.paced is None:
        return None
    load = chosen[0].load
    assert load.paced is not None
    return Paced(
        asked=chosen[0].asked,
        achieved=load.rate,
        p50_ms=load.paced.p50_ms,
        p99_ms=load.paced.p99_ms,
        max_ms=load.paced.max_ms,
        machine=chosen[0].machine,
        slow_commits_ms=chosen[0].slow_commits_ms,
    )

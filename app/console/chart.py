"""Deliveries by outcome, hour by hour, as the shapes of a stacked bar chart: drawn as SVG by
the overview's template (no script), coloured by the stylesheet."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 12, 28
LABEL_EVERY_HOURS = 6


@dataclass(frozen=True, slots=True)
class Bar:
    outcome: str
    x: float
    y: float
    width: float
    height: float
    title: str


@dataclass(frozen=True, slots=True)
class Label:
    x: float
    y: float
    text: str


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    hours: list[Label]
    scale: list[Label]
    baseline: float
    # The plot's left and right edges, where the scale's grid lines run.
    left: float
    right: float
    total: int


def hourly_chart(
    counts: Mapping[tuple[int, str], int],
    *,
    since: datetime,
    hours: int,
    outcomes: Sequence[str],
) -> Chart:
    """`counts`: {(hour, outcome): deliveries}, hour 0 starting at `since`; bars stack the
    outcomes in the order given."""
    plot_width, plot_height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_width / hours
    totals = [sum(counts.get((hour, outcome), 0) for outcome in outcomes) for hour in range(hours)]
    top = max(max(totals, default=0), 1)
    bars = []
    for hour in range(hours):
        start = since + timedelta(hours=hour)
        stacked = 0
        for outcome in outcomes:
            count = counts.get((hour, outcome), 0)
            if not count:
                continue
            height = plot_height * count / top
            stacked += count
            bars.append(
                Bar(
                    outcome=outcome,
                    x=round(LEFT + hour * slot + slot * 0.1, 1),
                    y=round(TOP + plot_height * (1 - stacked / top), 1),
                    width=round(slot * 0.8, 1),
                    height=round(height, 1),
                    title=f"{start:%H}:00–{start + timedelta(hours=1):%H}:00 UTC:"
                    f" {count} {outcome}",
                )
            )
    labels = [
        Label(round(LEFT + hour * slot, 1), HEIGHT - 8, f"{since + timedelta(hours=hour):%H}:00")
        for hour in range(0, hours, LABEL_EVERY_HOURS)
    ]
    scale = [
        Label(LEFT - 6, TOP + plot_height * (1 - part), str(round(top * part)))
        for part in (0, 0.5, 1)
    ]
    return Chart(
        WIDTH, HEIGHT, bars, labels, scale, TOP + plot_height, LEFT, WIDTH - RIGHT, sum(totals)
    )

"""bench/beside.py: the rotation of a round's runs, and the ratios taken within each round."""

from __future__ import annotations

from bench.beside import Beside, Kinds, Run, tables
from bench.ingest.wrk import Load

KINDS = Kinds(busy="busy", idle="idle")


def test_each_kind_goes_first_in_turn() -> None:
    orders = [KINDS.order(number) for number in range(4)]

    assert orders == [
        ("busy", "idle (a)", "idle (b)"),
        ("idle (a)", "idle (b)", "busy"),
        ("idle (b)", "busy", "idle (a)"),
        ("busy", "idle (a)", "idle (b)"),
    ]


def test_ratios_are_taken_within_each_round_and_shown_with_their_range() -> None:
    rates = {
        0: {"busy": 90, "idle (a)": 100, "idle (b)": 100},
        1: {"busy": 110, "idle (a)": 100, "idle (b)": 120},
    }
    runs = tuple(
        Run(kind, number, _load(rate), done=50.0 if kind == "busy" else 0.0)
        for number, by_kind in rates.items()
        for kind, rate in by_kind.items()
    )
    beside = Beside(KINDS, runs)

    lines = tables([("SQLite", beside)], "MiB")

    assert beside.busy_over_idle() == [0.9, 1.0]
    assert beside.noise() == [1.0, 1.2]
    assert beside.idle_rate() == 100
    assert lines[0].startswith("| backend | idle req/s | busy req/s | busy ÷ idle |")
    assert "MiB/s during busy | MiB during idle |" in lines[0]
    assert "| SQLite | 100 | 100 | 0.950 (0.900–1.000) | 1.100 (1.000–1.200) | 10.0 | 0 |" in lines
    assert "| SQLite | 2 | 110 | 100 | 120 | 1.000 | 3.0 | 3.0 |" in lines


def _load(rate: float) -> Load:
    return Load(requests=int(rate * 5), duration_s=5, p50_ms=1, p90_ms=2, p99_ms=3, max_ms=4)

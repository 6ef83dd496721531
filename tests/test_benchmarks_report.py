"""BENCHMARKS.md is one run's generated report, overwritten whole: no diary is kept in it."""

from __future__ import annotations

import re
from pathlib import Path

from bench.ingest.report import RELIABILITY_BEGIN, RELIABILITY_END, RELIABILITY_PENDING
from bench.reliability import placed

REPORT = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"
# The sections bench/ingest/report.py's render() writes, in its order, then bench/reliability.py's.
GENERATED = [
    "Summary",
    "Ingest throughput, side by side",
    "CPU per request, and what the target leaves",
    "Latency at half the maximum rate",
    "Growth: an empty database against 1,000,000 jobs",
    "Parser cost per payload",
    "Where the time goes",
    "Method",
    "Machine",
    "Reliability: faults, hostile input, fuzzing",
]


def test_the_report_holds_only_generated_sections() -> None:
    text = REPORT.read_text()
    assert re.findall(r"^## (.+)$", text, re.MULTILINE) == GENERATED
    assert text.endswith(RELIABILITY_END + "\n")
    assert "Hand-written" not in text


def test_reliability_figures_replace_the_pending_section_in_place() -> None:
    report = "# Benchmarks\n\n## Machine\n\n- 2 cores\n\n" + RELIABILITY_PENDING
    figures = f"{RELIABILITY_BEGIN}\n## Reliability\n\nfigures\n{RELIABILITY_END}\n"
    assert placed(report, figures) == "# Benchmarks\n\n## Machine\n\n- 2 cores\n\n" + figures


def test_reliability_figures_go_at_the_end_of_a_report_without_the_section() -> None:
    figures = f"{RELIABILITY_BEGIN}\n## Reliability\n\nfigures\n{RELIABILITY_END}\n"
    assert placed("# Benchmarks\n\n## Machine\n", figures) == (
        "# Benchmarks\n\n## Machine\n\n" + figures
    )

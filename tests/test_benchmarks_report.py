"""BENCHMARKS.md is one run's generated report, overwritten whole: no diary is kept in it."""

from __future__ import annotations

import re

import pytest

from bench.ingest.report import LATER, RELIABILITY, REPORT, RETENTION, Section

# The sections bench/ingest/report.py's render() writes, in its order, then those the later
# benchmarks write where it left them pending (LATER).
GENERATED = [
    "Summary",
    "Ingest throughput, side by side",
    "CPU per request, and what the target leaves",
    "PostgreSQL: where the CPU goes, and how far replicas take it",
    "Latency at half the maximum rate",
    "Growth: an empty database against 1,000,000 jobs",
    "Parser cost per payload",
    "Where the time goes",
    "Method",
    "Machine",
    "Reliability: faults, hostile input, fuzzing",
    "Retention: 100,000 bodies out of 2,000,000 deliveries",
    "Mirroring: throughput, and callback latency during a download",
    "Polling: polls per second, and ingest while polls are due",
    "Console: page latency at 1,000,000 jobs",
]
INGEST = "# Benchmarks\n\n## Machine\n\n- 2 cores\n"


def figures(section: Section) -> str:
    return section.wrap(f"{section.name} figures")


def test_the_report_holds_only_generated_sections() -> None:
    text = REPORT.read_text()
    assert re.findall(r"^## (.+)$", text, re.MULTILINE) == GENERATED
    assert [section.heading for section in LATER] == GENERATED[-len(LATER) :]
    assert text.endswith(LATER[-1].end + "\n")
    assert "Hand-written" not in text
    assert "Not measured yet" not in text


def test_the_later_sections_keep_their_markers_apart() -> None:
    assert RETENTION.begin != RELIABILITY.begin
    assert RETENTION.end != RELIABILITY.end
    assert RELIABILITY.begin == (
        "<!-- Reliability figures: written by `python -m bench.reliability`. -->"
    )


@pytest.mark.parametrize("section", LATER, ids=lambda section: section.name)
def test_figures_replace_their_pending_section_in_place(section: Section) -> None:
    report = INGEST + "\n" + "\n".join(later.pending() for later in LATER)
    expected = (
        INGEST
        + "\n"
        + "\n".join(figures(later) if later is section else later.pending() for later in LATER)
    )
    assert section.placed(report, figures(section)) == expected


@pytest.mark.parametrize("section", LATER, ids=lambda section: section.name)
def test_figures_replace_their_earlier_figures(section: Section) -> None:
    report = INGEST + "\n" + "\n".join(figures(later) for later in LATER)
    rerun = section.wrap("newer figures")
    expected = (
        INGEST + "\n" + "\n".join(rerun if later is section else figures(later) for later in LATER)
    )
    assert section.placed(report, rerun) == expected


def test_filling_the_pending_sections_in_any_order_gives_one_report() -> None:
    report = INGEST + "\n" + "\n".join(later.pending() for later in LATER)
    filled = INGEST + "\n" + "\n".join(figures(later) for later in LATER)
    for order in (LATER, LATER[::-1]):
        text = report
        for section in order:
            text = section.placed(text, figures(section))
        assert text == filled


def test_figures_go_at_the_end_of_a_report_without_their_section() -> None:
    assert RETENTION.placed(INGEST, figures(RETENTION)) == INGEST + "\n" + figures(RETENTION)

"""The reliability suite's figures in BENCHMARKS.md: load held, faults survived, inputs tried,
examples fuzzed, deliveries lost.

Runs the tests that hold them (tests/reliability, the parsers' property tests, the API's
schemathesis run) on SQLite and the real PostgreSQL (CI=true: an unreachable PostgreSQL fails
the run), with the minutes-long ones `make test` leaves out (--long), and writes what they
printed into BENCHMARKS.md's reliability section, between its markers, where the ingest
benchmark left it pending (bench/ingest/report.py); nothing is written unless every test passed.

    .venv/bin/python -m bench.reliability
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.ingest.facts import commit
from bench.ingest.report import RELIABILITY, REPORT

REPO = Path(__file__).resolve().parents[1]
TESTS = ("tests/reliability", "tests/providers/test_properties.py", "tests/test_openapi.py")
COMMAND = (
    "CI=true .venv/bin/pytest -s -p no:cacheprovider --hypothesis-show-statistics --long "
    + " ".join(TESTS)
)

# tests/reliability/support.py figures(): "[title] name: value, name: value"
_FIGURES = re.compile(r"^\[(?P<title>[^\]]+)\] (?P<values>.+)$")
# Hypothesis's statistics: the test's id, then "- N passing, M failing, and K invalid ..."
_TEST_ID = re.compile(r"^(?P<test>tests/.+):$")
_EXAMPLES = re.compile(r"- (?P<passing>\d+) passing, (?P<failing>\d+) failing")
_SUMMARY = re.compile(r"^=+ (?P<summary>.*\d+ passed.*?) in [\d.]+s.* =+$")


@dataclass
class Fuzzed:
    """One property test's examples; schemathesis reports one run per API operation."""

    test: str
    runs: int = 0
    passing: int = 0
    failing: int = 0


@dataclass(frozen=True)
class Suite:
    figures: list[tuple[str, str]]
    fuzzed: list[Fuzzed]
    summary: str
    seconds: float


def run() -> Suite:
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-s",
        # One process: the figures the tests print come through -s only without xdist workers.
        "-n",
        "0",
        "-p",
        "no:cacheprovider",
        "--hypothesis-show-statistics",
        "--long",
        *TESTS,
    ]
    started = time.monotonic()
    completed = subprocess.run(
        command, cwd=REPO, env=os.environ | {"CI": "true"}, capture_output=True, text=True
    )
    seconds = time.monotonic() - started
    if completed.returncode != 0:
        sys.exit(f"the suite failed; BENCHMARKS.md left as it was:\n{completed.stdout[-4000:]}")
    return read(completed.stdout, seconds)


def read(output: str, seconds: float) -> Suite:
    figures: list[tuple[str, str]] = []
    fuzzed: dict[str, Fuzzed] = {}
    summary = ""
    test = None
    for line in output.splitlines():
        if match := _FIGURES.match(line):
            figures.append((match["title"], match["values"]))
        elif match := _TEST_ID.match(line.strip()):
            test = fuzzed.setdefault(match["test"], Fuzzed(match["test"]))
        elif (match := _EXAMPLES.search(line)) and test is not None:
            test.runs += 1
            test.passing += int(match["passing"])
            test.failing += int(match["failing"])
            test = None
        elif match := _SUMMARY.match(line):
            summary = match["summary"]
    return Suite(figures, list(fuzzed.values()), summary, seconds)


def render(suite: Suite, commit: str) -> str:
    lines = [
        f"Run at commit `{commit}` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, in"
        f" {suite.seconds:.0f} s: {suite.summary}. Each row is what one test held and asserted"
        " (tests/reliability): the answers it expects, no delivery answered 2xx missing"
        " afterwards, and a consistent database.",
        "",
        "| test | figures |",
        "|---|---|",
        *(f"| {title} | {values.replace('|', '/')} |" for title, values in suite.figures),
        "",
        f"Fuzzing: {sum(f.passing for f in suite.fuzzed):,} generated examples passed in"
        f" {sum(f.runs for f in suite.fuzzed)} runs of {len(suite.fuzzed)} tests (schemathesis:"
        f" one run per API operation), {sum(f.failing for f in suite.fuzzed)} failing.",
        "",
        "| test | runs | examples passed |",
        "|---|---|---|",
        *(f"| `{f.test}` | {f.runs} | {f.passing:,} |" for f in suite.fuzzed),
        "",
        f"Reproduce: `{COMMAND}` (or `make bench`, which runs it after the ingest benchmark).",
    ]
    return RELIABILITY.wrap("\n".join(lines))


def main() -> None:
    suite = run()
    REPORT.write_text(RELIABILITY.placed(REPORT.read_text(), render(suite, commit())))
    print(f"{len(suite.figures)} figure lines and {len(suite.fuzzed)} fuzzed tests: {REPORT}")


if __name__ == "__main__":
    main()

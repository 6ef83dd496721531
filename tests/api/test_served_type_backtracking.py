"""A stored Content-Type is parsed in time linear in its length (possessive runs, no backtracking).

served_type runs on the event loop for every GET of a file, on a value a stranger's server chose.
"""

from __future__ import annotations

import subprocess
import sys

# Each run of spaces between two semicolons can be split between one parameter's trailing
# whitespace and the next one's leading whitespace: with a bad last character a backtracking
# parser tries every split, 3**40 of them here.
HOSTILE = "audio/mpeg" + ";  " * 40 + "<"
# Generous: a linear parser answers in microseconds; this only stops a hung child.
HANG_GUARD_S = 60


def test_a_content_type_of_empty_parameters_and_a_bad_end_is_refused_without_backtracking() -> None:
    program = f"from app.api.served_types import served_type\nprint(served_type({HOSTILE!r}))\n"
    try:
        done = subprocess.run(
            [sys.executable, "-c", program],
            capture_output=True,
            text=True,
            timeout=HANG_GUARD_S,
            check=True,
        )
    except subprocess.TimeoutExpired:
        raise AssertionError("served_type backtracks exponentially on the hostile type") from None
    assert done.stdout.strip() == "('application/octet-stream', 'attachment')"

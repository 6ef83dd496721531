"""The field readers every parser shares."""

from __future__ import annotations

import pytest

from app.providers.fields import integer


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (2**53 + 1, 2**53 + 1),  # exact, not rounded through a float
        (2**63 - 1, 2**63 - 1),
        (-(2**63), -(2**63)),
        (2**63, None),
        (True, None),
        ("12", 12),
        (12.0, 12),
        (1.5, None),
        ("x", None),
    ],
)
def test_integer_keeps_what_a_64_bit_column_holds_exactly(
    value: object, expected: int | None
) -> None:
    assert integer(value) == expected

"""Every payload under tests/fixtures/<provider>/ against its hand-written expectation.

Each `<name>.xml` or `<name>.json` sits next to `<name>.expected.json`, written from the
provider documents and the mapping tables (never generated from the parser): either
`{"jobs": [...]}` in the contract's shape, or `{"error": "<part of the ParseError message>"}`.
Each fixture is parsed twice: through its family's endpoint and through detection.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.providers.model import ParseError, Provider
from app.providers.registry import parse_callback
from tests.providers.contract import as_contract

FIXTURES = Path(__file__).parents[1] / "fixtures"
PAYLOADS = sorted(
    path
    for path in FIXTURES.glob("*/*")
    if path.suffix in {".xml", ".json"} and not path.name.endswith(".expected.json")
)


def test_every_family_has_fixtures() -> None:
    families = {path.parent.name for path in PAYLOADS}
    assert families == {provider.value for provider in Provider}


@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda p: f"{p.parent.name}/{p.name}")
@pytest.mark.parametrize("detect", [False, True], ids=["endpoint", "detected"])
def test_fixture_normalizes_as_expected(payload: Path, detect: bool) -> None:
    expected = json.loads(payload.with_name(payload.stem + ".expected.json").read_text())
    provider = None if detect else Provider(payload.parent.name)
    if "error" in expected:
        with pytest.raises(ParseError, match=expected["error"]):
            parse_callback(payload.read_bytes(), provider=provider)
        return
    parsed = parse_callback(payload.read_bytes(), provider=provider)
    assert parsed.provider.value == payload.parent.name
    assert [as_contract(job) for job in parsed.jobs] == expected["jobs"]

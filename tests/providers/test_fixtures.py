"""Every payload under tests/fixtures/<provider>/ against its hand-written expectation.

Each `<name>.xml` or `<name>.json` sits next to `<name>.expected.json`, written from the
provider documents and the mapping tables (never generated from the parser): either
`{"jobs": [...]}` in the contract's shape, or `{"error": "<part of the ParseError message>"}`.
Each callback fixture is parsed twice: through its family's endpoint and through detection.
Under `<provider>/poll/` are answers of the provider's job query API (poll/SOURCES.md says which
document each comes from), parsed as the poll endpoint of their provider parses them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.providers.model import ParseError, Provider
from app.providers.registry import ParsedCallback, parse_callback, parse_poll_answer
from tests.providers.contract import as_contract

FIXTURES = Path(__file__).parents[1] / "fixtures"
_PAYLOAD_SUFFIXES = {".xml", ".json"}


def _payloads(pattern: str) -> list[Path]:
    return sorted(
        path
        for path in FIXTURES.glob(pattern)
        if path.suffix in _PAYLOAD_SUFFIXES and not path.name.endswith(".expected.json")
    )


PAYLOADS = _payloads("*/*")
POLL_ANSWERS = _payloads("*/poll/*")


def _expected(payload: Path) -> dict[str, object]:
    expected: dict[str, object] = json.loads(
        payload.with_name(payload.stem + ".expected.json").read_text()
    )
    return expected


def test_every_family_has_fixtures() -> None:
    families = {path.parent.name for path in PAYLOADS}
    assert families == {provider.value for provider in Provider}


def test_every_family_has_poll_answers() -> None:
    families = {path.parent.parent.name for path in POLL_ANSWERS}
    assert families == {provider.value for provider in Provider}


@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda p: f"{p.parent.name}/{p.name}")
@pytest.mark.parametrize("detect", [False, True], ids=["endpoint", "detected"])
def test_fixture_normalizes_as_expected(payload: Path, detect: bool) -> None:
    expected = _expected(payload)
    provider = None if detect else Provider(payload.parent.name)
    if "error" in expected:
        with pytest.raises(ParseError, match=str(expected["error"])):
            parse_callback(payload.read_bytes(), provider=provider)
        return
    parsed = parse_callback(payload.read_bytes(), provider=provider)
    _assert_as_expected(parsed, payload.parent.name, expected)


@pytest.mark.parametrize(
    "payload", POLL_ANSWERS, ids=lambda p: f"{p.parent.parent.name}/poll/{p.name}"
)
def test_poll_answer_normalizes_as_expected(payload: Path) -> None:
    expected = _expected(payload)
    provider = Provider(payload.parent.parent.name)
    if "error" in expected:
        with pytest.raises(ParseError, match=str(expected["error"])):
            parse_poll_answer(payload.read_bytes(), provider=provider)
        return
    parsed = parse_poll_answer(payload.read_bytes(), provider=provider)
    _assert_as_expected(parsed, provider.value, expected)


def _assert_as_expected(parsed: ParsedCallback, family: str, expected: dict[str, object]) -> None:
    assert parsed.provider.value == family
    assert [as_contract(job) for job in parsed.jobs] == expected["jobs"]

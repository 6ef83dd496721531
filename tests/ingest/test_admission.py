"""Where a body's fault ends: anything parsing raises rejects the delivery; what fails after
parsing (here the Suno signature check) is not blamed on the body."""

from __future__ import annotations

import pytest

from app.ingest import admission
from app.ingest.admission import admit
from app.providers import suno
from tests.api.payloads import suno_json
from tests.ingest.submissions import detected


def _raises(exc: BaseException) -> object:
    def raising(*_args: object, **_kwargs: object) -> object:
        raise exc

    return raising


@pytest.mark.parametrize(
    "exc", [RecursionError("too deep"), LookupError("unknown encoding: x"), MemoryError()]
)
def test_anything_a_parser_raises_rejects_the_delivery(
    monkeypatch: pytest.MonkeyPatch, exc: BaseException
) -> None:
    monkeypatch.setattr(admission, "parse_callback", _raises(exc))

    intake = admit(detected(b"{}"), suno_key=None, max_jobs=100)

    assert intake.jobs == ()
    assert intake.error is not None and type(exc).__name__ in intake.error


def test_a_failure_after_parsing_is_not_the_body_s_fault(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(suno, "verify_signature", _raises(RuntimeError("a bug")))

    with pytest.raises(RuntimeError, match="a bug"):
        admit(detected(suno_json("t-after")), suno_key="key", max_jobs=100)

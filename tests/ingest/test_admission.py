"""Where a body's fault ends: anything parsing raises rejects the delivery; what fails after
parsing (here the Suno signature check) is not blamed on the body. A poll answer is parsed as
its provider's query answer and needs no signature."""

from __future__ import annotations

import time

import orjson
import pytest

from app.ingest import admission
from app.ingest.admission import admit
from app.providers import suno
from app.providers.model import Provider
from tests.api.payloads import suno_json, suno_signed
from tests.conftest import FIXTURES
from tests.ingest.submissions import detected, polled


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


SUNO_ANSWERS = FIXTURES / "suno" / "poll"


def test_a_poll_answer_needs_no_suno_signature() -> None:
    answer = (SUNO_ANSWERS / "record_info_separate_vocal.json").read_bytes()

    intake = admit(polled(answer, Provider.SUNO), suno_key="key", max_jobs=100)

    assert (intake.error, intake.signed_timestamp) == (None, None)
    assert [job.job_id for job in intake.jobs] == ["3e63b4cc88d52611159371f6af5571e7"]
    # The same key still holds every callback to its signature.
    with pytest.raises(admission.BadSignature):
        admit(detected(suno_json("3e63b4cc88d52611159371f6af5571e7")), suno_key="key", max_jobs=100)


def test_a_poll_answer_sent_as_a_callback_is_not_taken_for_one() -> None:
    answer = (SUNO_ANSWERS / "record_info_separate_vocal.json").read_bytes()

    intake = admit(detected(answer), suno_key="key", max_jobs=100)

    assert intake.jobs == ()
    assert intake.error is not None and "unrecognized payload" in intake.error


def test_an_answer_that_reports_no_job_is_rejected_with_what_the_provider_said() -> None:
    answer = (SUNO_ANSWERS / "record_info_wrong_key.json").read_bytes()

    intake = admit(polled(answer, Provider.SUNO), suno_key="key", max_jobs=100)

    assert (intake.provider, intake.jobs) == (Provider.SUNO, ())
    assert intake.error is not None and intake.error.startswith("record-info answered code 401")


ALL = frozenset(Provider)


def test_a_signed_suno_callback_and_a_poll_answer_are_never_held() -> None:
    """Only an unsigned callback's final state waits for the provider's word
    (STEMHOOK_CONFIRM_BY_POLL): a signature vouches for it, and a poll answer is that word."""
    headers = {
        name.lower(): value for name, value in suno_signed("key", "t-1", int(time.time())).items()
    }
    signed = admit(
        detected(suno_json("t-1"), headers=headers), suno_key="key", max_jobs=100, confirm=ALL
    )
    answer = (SUNO_ANSWERS / "record_info_separate_vocal.json").read_bytes()
    asked = admit(polled(answer, Provider.SUNO), suno_key=None, max_jobs=100, confirm=ALL)

    for intake in (signed, asked):
        assert intake.held == ()
        assert [job.state.is_final for job in intake.jobs] == [True]


def test_an_unsigned_callback_of_a_named_provider_holds_its_final_jobs_only() -> None:
    body = orjson.dumps(
        {
            "listJobsResponse": {
                "jobs": [
                    {"id": "run", "state": 2, "timing": {"createdAt": "0"}},
                    {"id": "done", "state": 3, "timing": {"createdAt": "0"}},
                ]
            }
        }
    )

    named = admit(
        detected(body), suno_key=None, max_jobs=100, confirm=frozenset({Provider.MEDIA_LAB})
    )
    unnamed = admit(detected(body), suno_key=None, max_jobs=100, confirm=frozenset({Provider.SUNO}))

    assert ([job.job_id for job in named.jobs], [job.job_id for job in named.held]) == (
        ["run"],
        ["done"],
    )
    assert ([job.job_id for job in unnamed.jobs], unnamed.held) == (["run", "done"], ())

"""Tencent Media Lab jobs beyond the fixture table: detection, edge values, malformed parts."""

from __future__ import annotations

from typing import Any

import pytest

from app.providers import media_lab
from app.providers.decode import Document, Format
from app.providers.model import InputRef, Job, ParseError, Role, State


def _job(**fields: Any) -> dict[str, Any]:
    return {"id": "job-1", "state": 3, "timing": {"createdAt": "0"}, **fields}


def _parse(body: Any) -> tuple[Job, ...]:
    return media_lab.parse(Document(Format.JSON, body))


def _stems(destination: Any, *entries: dict[str, Any]) -> dict[str, Any]:
    return _job(
        outputs=[
            {
                "contentId": "repo",
                "destination": destination,
                "smartContentResult": {"musicSeperate": list(entries)},
            }
        ]
    )


@pytest.mark.parametrize(
    "body",
    [
        _job(),
        {"job": _job()},
        {"requestId": "r", "getJobResponse": {"job": _job()}},
        {"createJobResponse": {"job": _job()}},
        {"listJobsResponse": {"jobs": [_job()]}},
        {"id": "job-1", "state": 1, "customId": "mine"},
    ],
    ids=["bare", "job", "get", "create", "list", "bare-custom-id"],
)
def test_recognizes_every_envelope(body: dict[str, Any]) -> None:
    assert media_lab.recognizes(Document(Format.JSON, body))
    (job,) = _parse(body)
    assert job.job_id == "job-1"


@pytest.mark.parametrize(
    "document",
    [
        Document(Format.XML, _job()),
        Document(Format.XML, {"job": _job()}),
        Document(Format.JSON, [_job()]),
        Document(Format.JSON, {"id": "job-1", "state": 3}),
        Document(Format.JSON, {"id": "job-1", "timing": {}}),
    ],
    ids=["xml-bare", "xml-wrapped", "json-list", "id-state-only", "no-state"],
)
def test_other_shapes_are_not_recognized(document: Document) -> None:
    assert not media_lab.recognizes(document)


@pytest.mark.parametrize(
    ("value", "state", "provider_state"),
    [(1, State.SUBMITTED, "1"), ("2", State.RUNNING, "2"), (5, State.CANCELED, "5")],
)
def test_state_as_number_or_digits(value: Any, state: State, provider_state: str) -> None:
    (job,) = _parse(_job(state=value))
    assert (job.state, job.provider_state, job.error) == (state, provider_state, None)


@pytest.mark.parametrize(
    "value", [True, 3.0, "03", " 3", "COMPLETED", 0, -1, None, "", [3], {"v": 3}], ids=repr
)
def test_any_other_state_is_refused(value: Any) -> None:
    with pytest.raises(ParseError, match=r"job\.state"):
        _parse(_job(state=value))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"getJobResponse": {}}, r"getJobResponse\.job is missing"),
        ({"createJobResponse": {"job": None}}, r"createJobResponse\.job is missing"),
        ({"job": None}, r"callback\.job is missing"),
        ({"getJobResponse": "x"}, r"getJobResponse must be an object"),
        ({"listJobsResponse": {}}, r"listJobsResponse\.jobs is empty"),
        ({"listJobsResponse": {"jobs": ["x"]}}, r"job must be an object"),
        ({"job": _job(id=None)}, r"job\.id is missing"),
        (_job(timing="soon"), r"job\.timing must be an object"),
        (_job(timing={"completedAt": "yesterday"}), r"job\.timing\.completedAt"),
        (_job(inputs=["x"]), r"job\.inputs\[0\] must be an object"),
        (_job(inputs=[{"source": "x"}]), r"job\.inputs\[0\]\.source must be an object"),
        (_job(outputs=["x"]), r"job\.outputs\[\] must be an object"),
        (_job(outputs=[{"smartContentResult": []}]), r"smartContentResult must be an object"),
        (_stems("/", "vocals.wav"), r"musicSeperate\[\] must be an object"),
        (_stems("/", {"tone": 1, "fileName": ["a"]}), r"fileName must be text"),
        (_job(customId={"a": 1}), r"job\.customId must be text"),
        ([_job()], r"callback must be an object"),
    ],
    ids=repr,
)
def test_malformed_parts_name_the_field(body: Any, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        _parse(body)


def test_every_listed_job_is_parsed() -> None:
    jobs = _parse({"listJobsResponse": {"jobs": [_job(id="a"), _job(id="b", state=4)]}})
    assert [(job.job_id, job.state) for job in jobs] == [
        ("a", State.SUCCEEDED),
        ("b", State.FAILED),
    ]


def test_only_the_first_input_counts() -> None:
    inputs = [{"url": "https://a.example/1.mp3"}, {"url": "https://a.example/2.mp3"}]
    (job,) = _parse(_job(inputs=inputs))
    assert job.input == InputRef(url="https://a.example/1.mp3")


@pytest.mark.parametrize("inputs", [None, []], ids=repr)
def test_no_inputs_is_an_empty_reference(inputs: Any) -> None:
    (job,) = _parse(_job(inputs=inputs))
    assert job.input == InputRef()


@pytest.mark.parametrize(
    ("destination", "file_name", "key"),
    [
        (None, "a.wav", "a.wav"),
        ("", "a.wav", "a.wav"),
        ("/", "a.wav", "a.wav"),
        ("//", "/a.wav", "a.wav"),
        ("out", "a.wav", "out/a.wav"),
        ("/out/", "/a.wav", "out/a.wav"),
        ("/out/deep", "sub/a.wav", "out/deep/sub/a.wav"),
        ("/out/", None, None),
        ("/out/", "/", None),
    ],
)
def test_object_joins_destination_and_file_name(
    destination: str | None, file_name: str | None, key: str | None
) -> None:
    (job,) = _parse(_stems(destination, {"tone": 1, "fileName": file_name}))
    (output,) = job.outputs
    assert (output.object, output.url, output.file_name) == (key, None, file_name)


@pytest.mark.parametrize("file_name", ["https://cdn.example/a.wav", "HTTP://cdn.example/a.wav"])
def test_url_file_name_is_a_url_not_an_object(file_name: str) -> None:
    (job,) = _parse(_stems("/out/", {"tone": 5, "fileName": file_name}))
    (output,) = job.outputs
    assert (output.role, output.url, output.object) == (Role.ACCOMPANIMENT, file_name, None)


@pytest.mark.parametrize("tone", [0, 6, "x", None, 1.5, True, [1]], ids=repr)
def test_unknown_tone_is_other(tone: Any) -> None:
    (job,) = _parse(_stems("/", {"tone": tone, "fileName": "a.wav"}))
    assert [output.role for output in job.outputs] == [Role.OTHER]


def test_outputs_without_results_contribute_nothing() -> None:
    outputs = [{"contentId": "repo"}, {"smartContentResult": {}}, {"smartContentResult": None}]
    (job,) = _parse(_job(outputs=outputs))
    assert job.outputs == ()

"""Suno-style callbacks beyond the fixture table: edge values, detection and the signature."""

from __future__ import annotations

from typing import Any

import pytest

from app.providers import suno
from app.providers.decode import Document, Format
from app.providers.model import ParseError, Provider, Role, State
from app.providers.registry import parse_callback

KEY = "stemhook-test-key"
TASK_ID = "3e63b4cc88d52611159371f6af5571e7"
TIMESTAMP = "1714560000"
# From `printf '%s' "$TASK_ID.$TIMESTAMP" | openssl dgst -sha256 -hmac "$KEY" -binary | base64`.
SIGNATURE = "mmW2r95iHb+LE7ltZztjWYdhxYAQ3BABuOJPujjlMyE="
NOW = 1714560000.0


def _verify(**overrides: Any) -> bool:
    arguments: dict[str, Any] = {
        "key": KEY,
        "task_id": TASK_ID,
        "timestamp": TIMESTAMP,
        "signature": SIGNATURE,
        "now": NOW,
    }
    return suno.verify_signature(**(arguments | overrides))


def _body(code: Any = 200, **data: Any) -> dict[str, Any]:
    return {"code": code, "msg": "ok", "data": {"task_id": TASK_ID, **data}}


def _parse(body: Any) -> Any:
    (job,) = suno.parse(Document(Format.JSON, body))
    return job


def test_signature_made_by_openssl_verifies() -> None:
    assert _verify()


@pytest.mark.parametrize("now", [NOW - 300, NOW + 300, NOW + 299.5])
def test_signature_within_tolerance_either_way_verifies(now: float) -> None:
    assert _verify(now=now)


@pytest.mark.parametrize("now", [NOW - 301, NOW + 301])
def test_stale_or_future_timestamp_is_refused(now: float) -> None:
    assert not _verify(now=now)


def test_tolerance_is_adjustable() -> None:
    assert _verify(now=NOW + 1000, tolerance_s=1000)
    assert not _verify(now=NOW + 1000, tolerance_s=999)


@pytest.mark.parametrize(
    "overrides",
    [
        {"key": "another-key"},
        {"task_id": "another-task"},
        {"signature": SIGNATURE.replace("mmW", "mmX")},
        {"signature": SIGNATURE.rstrip("=")},
        {"signature": ""},
        {"signature": None},
        {"signature": "é" + SIGNATURE[1:]},
        {"signature": "签名"},
        {"timestamp": None},
        {"timestamp": ""},
        {"timestamp": "1714560000.0"},
        {"timestamp": " 1714560000"},
        {"timestamp": "+1714560000"},
        {"timestamp": "１７１４５６００００"},
        {"timestamp": "9" * 5000},
        {"task_id": "\ud800"},
    ],
    ids=repr,
)
def test_anything_but_the_exact_signature_is_refused(overrides: dict[str, Any]) -> None:
    assert not _verify(**overrides)


def test_recognizes_only_json() -> None:
    body = _body(vocal_removal_info=None)
    assert suno.recognizes(Document(Format.JSON, body))
    assert not suno.recognizes(Document(Format.XML, body))


@pytest.mark.parametrize(
    "body",
    [[], "text", {"code": 200}, {"code": 200, "data": []}, {"data": {"task_id": TASK_ID}}],
    ids=repr,
)
def test_other_shapes_are_not_recognized(body: Any) -> None:
    assert not suno.recognizes(Document(Format.JSON, body))


def test_body_without_task_id_is_refused_at_the_endpoint() -> None:
    body = b'{"code": 200, "msg": "ok", "data": {"vocal_removal_info": null}}'
    with pytest.raises(ParseError, match="not a suno callback"):
        parse_callback(body, provider=Provider.SUNO)


@pytest.mark.parametrize("data", [{}, {"task_id": ""}, {"task_id": "  "}], ids=repr)
def test_parse_requires_task_id(data: dict[str, Any]) -> None:
    with pytest.raises(ParseError, match=r"data\.task_id is missing"):
        suno.parse(Document(Format.JSON, {"code": 200, "data": data}))


@pytest.mark.parametrize("code", [True, 200.0, "2OO", "-200", "", [200], {"value": 200}], ids=repr)
def test_code_must_be_digits(code: Any) -> None:
    with pytest.raises(ParseError, match="code"):
        _parse(_body(code))


def test_code_with_leading_zeros_is_the_same_code() -> None:
    job = _parse(_body("0200"))
    assert (job.state, job.provider_state, job.error) == (State.SUCCEEDED, "200", None)


def test_huge_code_is_a_failure_not_a_crash() -> None:
    job = _parse(_body("9" * 5000))
    assert job.state is State.FAILED
    assert job.error is not None and job.error.code == "9" * 5000


def test_instrumental_key_alone_makes_separate_vocal() -> None:
    job = _parse(_body(vocal_removal_info={"instrumental_url": None, "vocal_url": ""}))
    assert (job.kind, job.outputs) == ("separate_vocal", ())


def test_vocal_removal_info_wins_over_the_other_name() -> None:
    job = _parse(
        _body(
            vocal_removal_info={"vocal_url": "https://a.example/v.mp3"},
            vocal_separation_info={"drums_url": "https://a.example/d.mp3"},
        )
    )
    assert [output.role for output in job.outputs] == [Role.VOCALS]


@pytest.mark.parametrize(
    ("url", "file_name"),
    [
        ("https://cdn.example.com", None),
        ("https://cdn.example.com/", None),
        ("https://cdn.example.com/stems/", None),
        ("https://cdn.example.com/a/b.mp3#frag", "b.mp3"),
        ("http://[::1/broken.mp3", None),
        ("b.mp3", "b.mp3"),
    ],
)
def test_file_name_is_the_last_path_segment(url: str, file_name: str | None) -> None:
    (output,) = _parse(_body(vocal_removal_info={"vocal_url": url})).outputs
    assert (output.url, output.file_name) == (url, file_name)


@pytest.mark.parametrize("value", [0, 1.5, True, [], ["https://a.example/v.mp3"]], ids=repr)
def test_url_values_must_be_strings(value: Any) -> None:
    with pytest.raises(ParseError, match=r"vocal_removal_info\.vocal_url must be a URL string"):
        _parse(_body(vocal_removal_info={"vocal_url": value}))


@pytest.mark.parametrize("info", ["text", [], 5], ids=repr)
def test_info_must_be_an_object(info: Any) -> None:
    with pytest.raises(ParseError, match=r"data\.vocal_removal_info must be an object"):
        _parse(_body(vocal_removal_info=info))


def test_url_with_nul_is_refused() -> None:
    with pytest.raises(ParseError, match="NUL"):
        _parse(_body(vocal_removal_info={"vocal_url": "https://a.example/\x00.mp3"}))

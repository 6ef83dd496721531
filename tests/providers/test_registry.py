"""The one entry point: detection, endpoint mismatch, and limits every family shares."""

from __future__ import annotations

import orjson
import pytest

from app.providers.model import ParseError, Provider
from app.providers.registry import MAX_IDENTIFIER, parse_callback


def _suno(task_id: str) -> bytes:
    return orjson.dumps({"code": 200, "msg": "ok", "data": {"task_id": task_id}})


def test_identifiers_up_to_the_column_width_are_accepted() -> None:
    parsed = parse_callback(_suno("t" * MAX_IDENTIFIER))
    assert parsed.provider is Provider.SUNO
    assert len(parsed.jobs[0].job_id) == MAX_IDENTIFIER


def test_longer_identifiers_are_refused_not_cut() -> None:
    with pytest.raises(ParseError, match="job id is longer than 255"):
        parse_callback(_suno("t" * (MAX_IDENTIFIER + 1)))
    media_lab = {"id": "j1", "state": 3, "customId": "c" * 300, "timing": {}}
    with pytest.raises(ParseError, match="customId is longer than 255"):
        parse_callback(orjson.dumps(media_lab), provider=Provider.MEDIA_LAB)


def test_endpoint_family_must_match_the_payload() -> None:
    with pytest.raises(ParseError, match="not a tencent-ci callback"):
        parse_callback(_suno("t1"), provider=Provider.TENCENT_CI)


def test_a_job_listed_twice_in_one_delivery_is_refused() -> None:
    detail = {"JobId": "j1", "State": "Running", "Tag": "Tts"}
    body = orjson.dumps({"JobsDetail": [detail, detail | {"State": "Success"}]})
    with pytest.raises(ParseError, match="'j1' appears more than once"):
        parse_callback(body)

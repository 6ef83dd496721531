"""CI quirks that a fixture file would hide: times at the edge of what a datetime can hold."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from app.providers.model import ParseError, Provider
from app.providers.registry import parse_callback

# Readable by datetime.fromisoformat, but the shift to UTC leaves datetime's range.
EDGE_TIMES = ["0001-01-01T00:00:00+0800", "9999-12-31T23:59:59-0800", "0001-01-01 00:00:00"]


def _task_finish(**fields: Any) -> bytes:
    detail = {"JobId": "j1", "State": "Success", "Tag": "VoiceSeparate", **fields}
    return orjson.dumps({"EventName": "TaskFinish", "JobsDetail": detail})


def _workflow_finish(create_time: str, task_end_time: str) -> bytes:
    task = {"Type": "Transcode", "State": "Success", "EndTime": task_end_time}
    run = {"RunId": "r1", "State": "Success", "CreateTime": create_time, "Tasks": [task]}
    return orjson.dumps({"EventName": "WorkflowFinish", "WorkflowExecution": run})


@pytest.mark.parametrize("moment", EDGE_TIMES)
@pytest.mark.parametrize("field", ["CreationTime", "StartTime", "EndTime"])
def test_task_time_out_of_range_is_a_parse_error(field: str, moment: str) -> None:
    with pytest.raises(ParseError, match=f"{field} is out of range"):
        parse_callback(_task_finish(**{field: moment}), provider=Provider.TENCENT_CI)


@pytest.mark.parametrize("moment", EDGE_TIMES)
def test_workflow_time_out_of_range_is_a_parse_error(moment: str) -> None:
    ok = "2022-08-09 14:54:17+0800"
    for body in (_workflow_finish(moment, ok), _workflow_finish(ok, moment)):
        with pytest.raises(ParseError, match="out of range"):
            parse_callback(body, provider=Provider.TENCENT_CI)


def test_time_just_inside_the_range_still_reads() -> None:
    (job,) = parse_callback(_task_finish(CreationTime="0001-01-01T08:00:00+0800")).jobs
    assert job.created_at is not None
    assert job.created_at.isoformat() == "0001-01-01T00:00:00+00:00"

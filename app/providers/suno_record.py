"""Suno-style vocal removal, polled: the answer of GET /api/v1/vocal-removal/record-info.

`{code, msg, data: {taskId, response: {originUrl, vocalUrl, ...}, successFlag, errorCode,
errorMessage, createTime, completeTime}}`. `code` says whether the query worked (401 a wrong
key, 404 an unknown task), `successFlag` where the task stands. A task gives the same job
whether its callback or this answer reports it: each camelCase `<stem>Url` is the callback's
snake-case `<stem>_url`, read by suno.py's table, and a null one is a stem this separation type
does not make, as an absent key is in the callback. Only the times, and `successFlag` as the
provider's word for the state, are the answer's own.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from app.providers import suno
from app.providers.decode import Document, Format
from app.providers.fields import camel_to_snake, epoch_ms, mapping, required_text, text
from app.providers.model import Job, JobError, OutputFile, ParseError, Provider, State

# PENDING means waiting to be processed (待执行), and is the only state of a task not yet ended:
# nothing in it says the task has started.
_STATES = {
    "PENDING": State.SUBMITTED,
    "SUCCESS": State.SUCCEEDED,
    "CREATE_TASK_FAILED": State.FAILED,
    "GENERATE_AUDIO_FAILED": State.FAILED,
}
# The task ended but its callback failed: it succeeded if it has result files.
_CALLBACK_EXCEPTION = "CALLBACK_EXCEPTION"
_URL_SUFFIX = "Url"


def parse_query_answer(document: Document) -> tuple[Job, ...]:
    if document.format is not Format.JSON:
        raise ParseError("a record-info answer is JSON, not XML")
    root = mapping(document.data, "answer")
    code = suno.status_code(root.get("code"))
    if code != suno.SUCCESS:
        raise ParseError(f"record-info answered code {code}: {suno.message(root)!r}")
    data = mapping(root.get("data"), "data")
    flag = required_text(data.get("successFlag"), "data.successFlag")
    response = mapping(data.get("response"), "data.response")
    url_keys = {
        camel_to_snake(key): key
        for key, value in response.items()
        if key.endswith(_URL_SUFFIX) and value is not None
    }
    outputs = tuple(_outputs(response, url_keys))
    state = _state(flag, finished_with_files=bool(outputs))
    return (
        Job(
            provider=Provider.SUNO,
            job_id=required_text(data.get("taskId"), "data.taskId"),
            kind=suno.kind(url_keys),
            state=state,
            provider_state=flag,
            error=_error(data, flag) if state is State.FAILED else None,
            created_at=_time(data.get("createTime"), "data.createTime"),
            finished_at=_time(data.get("completeTime"), "data.completeTime"),
            outputs=outputs,
        ),
    )


def _outputs(response: Mapping[str, Any], url_keys: dict[str, str]) -> list[OutputFile]:
    files = []
    for snake_key, key in url_keys.items():
        file = suno.output_file(snake_key, response[key], f"data.response.{key}")
        if file is not None:
            files.append(file)
    return files


def _state(flag: str, *, finished_with_files: bool) -> State:
    name = flag.strip().upper()
    if name == _CALLBACK_EXCEPTION:
        return State.SUCCEEDED if finished_with_files else State.FAILED
    state = _STATES.get(name)
    if state is None:
        raise ParseError(f"data.successFlag {flag[:80]!r} is not a record-info status")
    return state


def _error(data: Mapping[str, Any], flag: str) -> JobError:
    return JobError(
        code=text(data.get("errorCode"), "data.errorCode") or flag,
        message=text(data.get("errorMessage"), "data.errorMessage") or "",
    )


def _time(value: Any, what: str) -> datetime | None:
    """Epoch milliseconds, as the current documents show; an older example shows
    "2025-01-01 00:10:00" with no zone, which names no instant, so it reads as unknown."""
    try:
        return epoch_ms(value, what)
    except ParseError:
        return None

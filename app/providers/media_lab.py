"""Tencent Media Lab source separation: the Job struct, bare or in an API response envelope.

The callback posts the whole Job struct; CreateJob, GetJob and ListJobs answers wrap the same
struct, so saved query answers are parsed alike. States and stem tones are numbered enums, sent
as numbers or as digit strings; times are epoch-millisecond strings where "0" means not yet.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import orjson

from app.providers.decode import Document, Format
from app.providers.fields import (
    as_list,
    epoch_ms,
    integer,
    mapping,
    object_key,
    required_text,
    text,
)
from app.providers.model import (
    InputRef,
    Job,
    JobError,
    OutputFile,
    ParseError,
    Provider,
    Role,
    State,
)

KIND = "music_separate"

_STATES = {
    "1": State.SUBMITTED,
    "2": State.RUNNING,
    "3": State.SUCCEEDED,
    "4": State.FAILED,
    "5": State.CANCELED,
}
# Tone 5 is the provider's "OTHER": everything but the named stems, i.e. the accompaniment.
_TONES = {
    1: Role.VOCALS,
    2: Role.DRUMS,
    3: Role.BASS,
    4: Role.PIANO,
    5: Role.ACCOMPANIMENT,
}
_SINGLE_JOB_RESPONSES = ("getJobResponse", "createJobResponse")
_ENVELOPE_KEYS = ("listJobsResponse", *_SINGLE_JOB_RESPONSES, "job")
_JOB_SHAPE_KEYS = ("timing", "inputs", "outputs", "customId")
_URL_SCHEMES = ("http://", "https://")
_QUERY_ANSWERS = ("getJobResponse", "listJobsResponse")
_MAX_QUOTED = 300


def recognizes(document: Document) -> bool:
    root = document.data
    if document.format is not Format.JSON or not isinstance(root, Mapping):
        return False
    if any(key in root for key in _ENVELOPE_KEYS):
        return True
    return "id" in root and "state" in root and any(key in root for key in _JOB_SHAPE_KEYS)


def parse(document: Document) -> tuple[Job, ...]:
    root = mapping(document.data, "callback")
    return tuple(_job(mapping(item, "job")) for item in _job_structs(root))


def parse_query_answer(document: Document) -> tuple[Job, ...]:
    """A GetJob or ListJobs answer. The documents show no failed answer: whatever comes in
    place of the job is the API's error, quoted as it came."""
    root = document.data
    if isinstance(root, Mapping) and any(key in root for key in _QUERY_ANSWERS):
        return parse(document)
    quoted = orjson.dumps(root).decode()
    raise ParseError(f"Media Lab answered without a job: {quoted[:_MAX_QUOTED]}")


def _job_structs(root: Mapping[str, Any]) -> list[Any]:
    if "listJobsResponse" in root:
        jobs = as_list(mapping(root["listJobsResponse"], "listJobsResponse").get("jobs"))
        if not jobs:
            raise ParseError("listJobsResponse.jobs is empty")
        return jobs
    for name in _SINGLE_JOB_RESPONSES:
        if name in root:
            return [_required_job(mapping(root[name], name), name)]
    if "job" in root:
        return [_required_job(root, "callback")]
    return [root]


def _required_job(envelope: Mapping[str, Any], what: str) -> Any:
    job = envelope.get("job")
    if job is None:
        raise ParseError(f"{what}.job is missing")
    return job


def _job(job: Mapping[str, Any]) -> Job:
    state, provider_state = _state(job.get("state"))
    timing = mapping(job.get("timing"), "job.timing")
    return Job(
        provider=Provider.MEDIA_LAB,
        job_id=required_text(job.get("id"), "job.id"),
        kind=KIND,
        state=state,
        provider_state=provider_state,
        # The Job struct has no error fields: an ERROR job says only that it failed.
        error=JobError(code="ERROR", message="") if state is State.FAILED else None,
        custom_id=text(job.get("customId"), "job.customId"),
        created_at=epoch_ms(timing.get("createdAt"), "job.timing.createdAt"),
        started_at=epoch_ms(timing.get("startedAt"), "job.timing.startedAt"),
        finished_at=epoch_ms(timing.get("completedAt"), "job.timing.completedAt"),
        input=_input(as_list(job.get("inputs"))),
        outputs=tuple(_outputs(as_list(job.get("outputs")))),
    )


def _state(value: Any) -> tuple[State, str]:
    provider_state = required_text(value, "job.state")
    state = _STATES.get(provider_state)
    if state is None:
        raise ParseError(f"job.state {provider_state[:80]!r} is not a Media Lab job state")
    return state, provider_state


def _input(inputs: list[Any]) -> InputRef:
    if not inputs:
        return InputRef()
    first = mapping(inputs[0], "job.inputs[0]")
    source = mapping(first.get("source"), "job.inputs[0].source")
    return InputRef(
        url=text(first.get("url"), "job.inputs[0].url"),
        bucket=text(source.get("contentId"), "job.inputs[0].source.contentId"),
        object=object_key(source.get("path"), "job.inputs[0].source.path"),
    )


def _outputs(outputs: list[Any]) -> Iterator[OutputFile]:
    for item in outputs:
        output = mapping(item, "job.outputs[]")
        result = mapping(output.get("smartContentResult"), "job.outputs[].smartContentResult")
        content_id = text(output.get("contentId"), "job.outputs[].contentId")
        destination = text(output.get("destination"), "job.outputs[].destination")
        for stem in as_list(result.get("musicSeperate")):
            entry = mapping(stem, "smartContentResult.musicSeperate[]")
            file_name = text(entry.get("fileName"), "musicSeperate[].fileName")
            is_url = file_name is not None and file_name.lower().startswith(_URL_SCHEMES)
            yield OutputFile(
                role=_role(entry.get("tone")),
                url=file_name if is_url else None,
                object=None if is_url else _object(destination, file_name),
                content_id=content_id,
                destination=destination,
                file_name=file_name,
            )


def _role(tone: Any) -> Role:
    number = integer(tone)
    return Role.OTHER if number is None else _TONES.get(number, Role.OTHER)


def _object(destination: str | None, file_name: str | None) -> str | None:
    """The file's key in the repository: the output directory joined with the file name, as the
    documents tell users to build it; destination "/" is the repository root."""
    name = (file_name or "").strip("/")
    if not name:
        return None
    directory = (destination or "").strip("/")
    return f"{directory}/{name}" if directory else name

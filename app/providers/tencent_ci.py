"""Tencent Cloud CI (数据万象): TaskFinish for every Tag, and WorkflowFinish.

One envelope serves every Tag: VoiceSeparate and Tts get their own output roles and TTS
text, every other Tag keeps the envelope (state, times, code, input, output objects, md5s,
media info, user data, workflow). Only the job's own top-level State counts: nested elements
such as Operation/DigitalWatermark/State describe a sub-step, not the job.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from app.providers.decode import Document, Format
from app.providers.fields import (
    as_list,
    ci_time,
    integer,
    mapping,
    number,
    object_key,
    required_text,
    snake_case,
    text,
)
from app.providers.model import (
    AudioStream,
    InputRef,
    Job,
    JobError,
    MediaInfo,
    OutputFile,
    ParseError,
    Provider,
    Role,
    State,
    Tts,
    Workflow,
    WorkflowTask,
)

_STATES = {
    "submitted": State.SUBMITTED,
    "running": State.RUNNING,
    "pause": State.PAUSED,
    "paused": State.PAUSED,
    "success": State.SUCCEEDED,
    "failed": State.FAILED,
    "cancel": State.CANCELED,
    "canceled": State.CANCELED,
    "cancelled": State.CANCELED,
}

# Which Output element holds which stem, per kind; any other kind's Output.Object is "output".
_OUTPUT_ROLES: dict[str, tuple[tuple[str, Role], ...]] = {
    "voice_separate": (
        ("AuObject", Role.VOCALS),
        ("Object", Role.ACCOMPANIMENT),
        ("BassObject", Role.BASS),
        ("DrumObject", Role.DRUMS),
    ),
    "tts": (("Object", Role.SPEECH),),
}
_DEFAULT_OUTPUT_ROLES = (("Object", Role.OUTPUT),)
_ENVELOPE_KEYS = ("JobsDetail", "WorkflowExecution")
_TEMPLATE = "${"


def recognizes(document: Document) -> bool:
    root = _root(document)
    return isinstance(root, Mapping) and any(key in root for key in _ENVELOPE_KEYS)


def parse(document: Document) -> tuple[Job, ...]:
    root = mapping(_root(document), "callback")
    if "WorkflowExecution" in root:
        runs = as_list(root["WorkflowExecution"])
        if not runs:
            raise ParseError("WorkflowExecution is empty")
        return tuple(_workflow_run(mapping(run, "WorkflowExecution")) for run in runs)
    # Some senders omit EventName; a JobsDetail body is a TaskFinish whatever it says.
    details = as_list(root.get("JobsDetail"))
    if not details:
        raise ParseError("not a Tencent CI callback: neither JobsDetail nor WorkflowExecution")
    return tuple(_task_job(mapping(detail, "JobsDetail")) for detail in details)


@dataclass(frozen=True, slots=True)
class JobsPage:
    """What a DescribeMediaJobs answer says of itself: how many jobs it lists, and the token that
    asks for the next page (None: it is the last)."""

    jobs: int
    next_token: str | None


def parse_query_answer(document: Document) -> tuple[Job, ...]:
    """A DescribeMediaJob or DescribeMediaJobs answer: `<Response>` with one JobsDetail per job,
    each as a TaskFinish callback gives it, and the asked ids CI does not know under
    NonExistJobIds; or CI's `<Error>`."""
    answer = _answer(document)
    unknown = [
        job_id.strip()
        for item in as_list(answer.get("NonExistJobIds"))
        for job_id in (text(item, "NonExistJobIds") or "").split(",")
        if job_id.strip()
    ]
    if unknown:
        raise ParseError(f"CI does not know job {', '.join(unknown)[:200]} (NonExistJobIds)")
    details = as_list(answer.get("JobsDetail"))
    if not details:
        raise ParseError("the answer has no JobsDetail")
    return tuple(_task_job(mapping(detail, "JobsDetail")) for detail in details)


def parse_jobs_page(document: Document) -> JobsPage:
    """A DescribeMediaJobs answer's page: `<Response>` with its JobsDetail and NextToken (empty
    on the last page); or CI's `<Error>`."""
    answer = _answer(document)
    next_token = (text(answer.get("NextToken"), "NextToken") or "").strip()
    return JobsPage(len(as_list(answer.get("JobsDetail"))), next_token or None)


def _answer(document: Document) -> Mapping[str, Any]:
    """The `<Response>` of a query answer; ParseError saying what CI answered for its `<Error>`."""
    if isinstance(document.data, Mapping) and "Error" in document.data:
        error = mapping(document.data["Error"], "Error")
        code = text(error.get("Code"), "Error.Code")
        message = text(error.get("Message"), "Error.Message")
        raise ParseError(f"CI answered error {code}: {message}")
    return mapping(_root(document), "Response")


def _root(document: Document) -> Any:
    data = document.data
    # XML always has one root element (<Response>); a JSON sender may wrap the same way.
    if isinstance(data, Mapping) and len(data) == 1:
        ((name, inner),) = data.items()
        if document.format is Format.XML or name == "Response":
            return inner
    return data


def _state(value: Any, what: str) -> tuple[State, str]:
    provider_state = required_text(value, what)
    state = _STATES.get(provider_state.strip().lower())
    if state is None:
        raise ParseError(f"{what} {provider_state[:80]!r} is not a CI job state")
    return state, provider_state


def _task_job(detail: Mapping[str, Any]) -> Job:
    job_id = required_text(detail.get("JobId"), "JobsDetail.JobId")
    state, provider_state = _state(detail.get("State"), "JobsDetail.State")
    tag = text(detail.get("Tag"), "JobsDetail.Tag")
    kind = snake_case(tag) if tag else "unknown"
    operation = mapping(detail.get("Operation"), "Operation")
    source = mapping(detail.get("Input"), "Input")
    return Job(
        provider=Provider.TENCENT_CI,
        job_id=job_id,
        kind=kind,
        state=state,
        provider_state=provider_state,
        error=_error(detail) if state is State.FAILED else None,
        user_data=text(operation.get("UserData"), "Operation.UserData"),
        created_at=ci_time(detail.get("CreationTime"), "CreationTime"),
        started_at=ci_time(detail.get("StartTime"), "StartTime"),
        finished_at=ci_time(detail.get("EndTime"), "EndTime"),
        input=InputRef(
            bucket=text(source.get("BucketId") or source.get("Bucket"), "Input.BucketId"),
            region=text(source.get("Region"), "Input.Region"),
            object=object_key(source.get("Object"), "Input.Object"),
            url=text(source.get("Url"), "Input.Url"),
        ),
        outputs=tuple(_outputs(kind, operation)),
        media_info=_media_info(operation.get("MediaInfo")),
        tts=_tts(operation.get("TtsConfig")),
        workflow=_workflow(detail.get("Workflow")),
        template_id=text(operation.get("TemplateId"), "Operation.TemplateId"),
        template_name=text(operation.get("TemplateName"), "Operation.TemplateName"),
        queue_id=text(detail.get("QueueId"), "QueueId"),
    )


def _error(detail: Mapping[str, Any]) -> JobError:
    return JobError(
        code=text(detail.get("Code"), "JobsDetail.Code") or "Failed",
        message=text(detail.get("Message"), "JobsDetail.Message") or "",
    )


def _outputs(kind: str, operation: Mapping[str, Any]) -> Iterator[OutputFile]:
    """The files a job produced: its declared outputs by role, then any other result file."""
    result_files = [
        mapping(item, "MediaResult.OutputFile")
        for item in as_list(mapping(operation.get("MediaResult"), "MediaResult").get("OutputFile"))
    ]
    md5s = {
        name: text(entry.get("Md5"), "Md5Info.Md5")
        for result in result_files
        for entry in (mapping(item, "Md5Info") for item in as_list(result.get("Md5Info")))
        if (name := object_key(entry.get("ObjectName"), "Md5Info.ObjectName"))
    }
    seen: set[str] = set()
    for declared in as_list(operation.get("Output")):
        output = mapping(declared, "Operation.Output")
        for element, role in _OUTPUT_ROLES.get(kind, _DEFAULT_OUTPUT_ROLES):
            name = object_key(output.get(element), f"Output.{element}")
            # "output/audio.${ext}" names files still to be made (Submitted jobs, Snapshot):
            # a pattern, not a produced file; the real names come in MediaResult.
            if name is None or _TEMPLATE in name:
                continue
            seen.add(name)
            yield OutputFile(
                role=role,
                bucket=text(output.get("Bucket"), "Output.Bucket"),
                region=text(output.get("Region"), "Output.Region"),
                object=name,
                md5=md5s.get(name),
            )
    for result in result_files:
        for item in as_list(result.get("ObjectName")):
            name = object_key(item, "OutputFile.ObjectName")
            if name is None or name in seen:
                continue
            seen.add(name)
            yield OutputFile(
                role=Role.OUTPUT,
                bucket=text(result.get("Bucket"), "OutputFile.Bucket"),
                region=text(result.get("Region"), "OutputFile.Region"),
                object=name,
                md5=md5s.get(name),
            )


def _media_info(value: Any) -> MediaInfo | None:
    info = mapping(value, "MediaInfo")
    if not info:
        return None
    fmt = mapping(info.get("Format"), "MediaInfo.Format")
    streams = mapping(info.get("Stream"), "MediaInfo.Stream")
    return MediaInfo(
        format_name=text(fmt.get("FormatName"), "Format.FormatName"),
        duration_s=number(fmt.get("Duration")),
        bitrate_kbps=number(fmt.get("Bitrate")),
        size_bytes=integer(fmt.get("Size")),
        audio_streams=tuple(
            AudioStream(
                codec=text(audio.get("CodecName"), "Audio.CodecName"),
                sample_rate=integer(audio.get("SampleRate")),
                channels=integer(audio.get("Channel")),
                bitrate_kbps=number(audio.get("Bitrate")),
                duration_s=number(audio.get("Duration")),
            )
            for audio in (mapping(item, "Stream.Audio") for item in as_list(streams.get("Audio")))
            if audio
        ),
    )


def _tts(value: Any) -> Tts | None:
    config = mapping(value, "TtsConfig")
    if not config:
        return None
    return Tts(
        input=text(config.get("Input"), "TtsConfig.Input"),
        input_type=text(config.get("InputType"), "TtsConfig.InputType"),
    )


def _workflow(value: Any) -> Workflow | None:
    workflow = mapping(value, "Workflow")
    if not workflow:
        return None
    return Workflow(
        workflow_id=text(workflow.get("WorkflowId"), "Workflow.WorkflowId"),
        workflow_name=text(workflow.get("WorkflowName"), "Workflow.WorkflowName"),
        run_id=text(workflow.get("RunId"), "Workflow.RunId"),
        name=text(workflow.get("Name"), "Workflow.Name"),
    )


def _workflow_run(run: Mapping[str, Any]) -> Job:
    run_id = required_text(run.get("RunId"), "WorkflowExecution.RunId")
    state, provider_state = _state(run.get("State"), "WorkflowExecution.State")
    tasks = tuple(_workflow_task(mapping(task, "Tasks")) for task in as_list(run.get("Tasks")))
    ends = [task.finished_at for task in tasks if task.finished_at is not None]
    return Job(
        provider=Provider.TENCENT_CI,
        job_id=run_id,
        kind="workflow",
        state=state,
        provider_state=provider_state,
        error=_workflow_error(provider_state, tasks) if state is State.FAILED else None,
        created_at=ci_time(run.get("CreateTime"), "WorkflowExecution.CreateTime"),
        # A run has no end time of its own; its last task's end is when it finished.
        finished_at=max(ends) if state.is_final and ends else None,
        input=InputRef(
            bucket=text(run.get("BucketId"), "WorkflowExecution.BucketId"),
            object=object_key(run.get("Object"), "WorkflowExecution.Object"),
        ),
        workflow=Workflow(
            workflow_id=text(run.get("WorkflowId"), "WorkflowExecution.WorkflowId"),
            workflow_name=text(run.get("WorkflowName"), "WorkflowExecution.WorkflowName"),
            run_id=run_id,
        ),
        tasks=tasks,
    )


def _workflow_task(task: Mapping[str, Any]) -> WorkflowTask:
    provider_state = text(task.get("State"), "Tasks.State")
    return WorkflowTask(
        type=text(task.get("Type"), "Tasks.Type"),
        name=text(task.get("Name"), "Tasks.Name"),
        job_id=text(task.get("JobId"), "Tasks.JobId"),
        state=_STATES.get(provider_state.strip().lower()) if provider_state else None,
        provider_state=provider_state,
        template_id=text(task.get("TemplateId"), "Tasks.TemplateId"),
        template_name=text(task.get("TemplateName"), "Tasks.TemplateName"),
        created_at=ci_time(task.get("CreateTime"), "Tasks.CreateTime"),
        finished_at=ci_time(task.get("EndTime"), "Tasks.EndTime"),
    )


def _workflow_error(provider_state: str, tasks: tuple[WorkflowTask, ...]) -> JobError:
    failed = [task.name or task.job_id or "?" for task in tasks if task.state is State.FAILED]
    message = f"failed tasks: {', '.join(failed)}" if failed else ""
    return JobError(code=provider_state, message=message)

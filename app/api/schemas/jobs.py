"""The normalized job contract, its history, and the raw payload behind it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Self, TypeVar
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field

from app import models
from app.api.schemas import examples
from app.api.schemas.common import BodyOut, Out
from app.mirror.sources import FileStatus
from app.polling.watches import WatchStatus, watch_status
from app.providers.model import Provider, Role, State
from app.queries.files import FileView
from app.queries.watches import WatchView

M = TypeVar("M", bound=BaseModel)


class JobErrorOut(Out):
    code: str
    message: str


class InputOut(Out):
    bucket: str | None
    region: str | None
    object: str | None
    url: str | None


class FileOut(Out):
    """stemhook's copy of an output file: pending until a worker fetched it, then stored, failed
    (POST .../files/retry queues it again) or skipped (mirroring off, no COS credentials)."""

    status: FileStatus
    bytes: int | None = Field(description="size of the stored copy")
    sha256: str | None = Field(description="hex digest of the stored copy")
    md5: str | None = Field(description="hex digest of the stored copy")
    md5_verified: bool | None = Field(
        description="whether md5 equals the MD5 the callback claimed; null when it claimed none"
        " or nothing is stored yet"
    )
    content_type: str | None
    stored_at: datetime | None
    attempts: int = Field(description="fetches tried since it was last queued")
    error: str | None = Field(description="why the last fetch failed, or why it is skipped")
    href: str | None = Field(description="URL path of the stored bytes, once stored")

    @classmethod
    def of(cls, file: FileView, *, href: str) -> FileOut:
        return cls(
            status=file.status,
            bytes=file.bytes,
            sha256=file.sha256,
            md5=file.md5,
            md5_verified=file.md5_verified,
            content_type=file.content_type,
            stored_at=file.stored_at,
            attempts=file.attempts,
            error=file.error,
            href=href if file.status is FileStatus.STORED else None,
        )


class WatchOut(Out):
    """Whether stemhook asks the provider about the job when its callback is late: `waiting`
    (unfinished, not yet overdue), `polling` (overdue: asked with backoff), `done` (became final
    while watched), `gave_up` (STEMHOOK_POLL_GIVE_UP_AFTER passed unfinished), `idle` (arrived
    final: nothing to watch), `not_configured` (unfinished, no credentials for its provider)."""

    status: WatchStatus
    polls: int = Field(description="queries of the provider so far")
    last_polled_at: datetime | None
    next_poll_at: datetime | None = Field(
        description="when the provider is asked next if no final state arrives first"
    )
    last_error: str | None = Field(description="why the last query failed, if it did")

    @classmethod
    def of(cls, state: State, watch: WatchView | None, *, configured: bool) -> WatchOut:
        status = watch_status(state, None if watch is None else watch.status, configured=configured)
        due = status in (WatchStatus.WAITING, WatchStatus.POLLING)
        return cls(
            status=status,
            polls=0 if watch is None else watch.polls,
            last_polled_at=None if watch is None else watch.last_polled_at,
            next_poll_at=watch.run_after if watch is not None and due else None,
            last_error=None if watch is None else watch.last_error,
        )


class OutputOut(Out):
    role: Role
    url: str | None
    bucket: str | None
    region: str | None
    object: str | None
    content_id: str | None
    destination: str | None
    file_name: str | None
    md5: str | None = Field(description="as the callback claims it")
    file: FileOut | None = Field(
        description="stemhook's copy of the file; null when the output names nothing to fetch"
        " or the job has not succeeded"
    )


class AudioStreamOut(Out):
    codec: str | None
    sample_rate: int | None
    channels: int | None
    bitrate_kbps: float | None
    duration_s: float | None


class MediaInfoOut(Out):
    format_name: str | None
    duration_s: float | None
    bitrate_kbps: float | None
    size_bytes: int | None
    audio_streams: list[AudioStreamOut]


class TtsOut(Out):
    input: str | None
    input_type: str | None


class WorkflowOut(Out):
    workflow_id: str | None
    workflow_name: str | None
    run_id: str | None
    name: str | None


class WorkflowTaskOut(Out):
    type: str | None
    name: str | None
    job_id: str | None
    state: State | None
    provider_state: str | None
    template_id: str | None
    template_name: str | None
    created_at: datetime | None
    finished_at: datetime | None


class JobOut(Out):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.JOB]})

    provider: Provider
    job_id: str
    kind: str
    state: State
    provider_state: str
    error: JobErrorOut | None
    custom_id: str | None
    user_data: str | None
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    input: InputOut
    outputs: list[OutputOut]
    media_info: MediaInfoOut | None
    tts: TtsOut | None
    workflow: WorkflowOut | None
    tasks: list[WorkflowTaskOut] | None
    template_id: str | None
    template_name: str | None
    queue_id: str | None
    deliveries: int = Field(
        description="0 for a job registered (PUT .../expect) and not yet heard of"
    )
    first_received_at: datetime = Field(description="or when it was registered, if earlier")
    last_received_at: datetime
    watch: WatchOut

    @classmethod
    def of(
        cls,
        job: models.Job,
        files: Mapping[int, FileView],
        watch: WatchView | None,
        *,
        polled: frozenset[Provider],
        root_path: str,
    ) -> Self:
        """`files`: the job's, by output position; `watch`: its watch row, if it has one;
        `polled`: the providers configured to be polled; `root_path`: the prefix of links."""
        files_path = f"{root_path}/v1/jobs/{job.provider}/{quote(job.job_id, safe='')}/files"
        return cls(
            provider=Provider(job.provider),
            job_id=job.job_id,
            kind=job.kind,
            state=State(job.state),
            provider_state=job.provider_state,
            error=_error(job),
            custom_id=job.custom_id,
            user_data=job.user_data,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            input=InputOut(
                bucket=job.input_bucket,
                region=job.input_region,
                object=job.input_object,
                url=job.input_url,
            ),
            outputs=[
                OutputOut(**output, file=_file(files.get(position), f"{files_path}/{position}"))
                for position, output in enumerate(job.outputs or ())
            ],
            media_info=_optional(MediaInfoOut, job.media_info),
            tts=_tts(job),
            workflow=_workflow(job),
            tasks=None if job.tasks is None else [WorkflowTaskOut(**task) for task in job.tasks],
            template_id=job.template_id,
            template_name=job.template_name,
            queue_id=job.queue_id,
            deliveries=job.deliveries,
            first_received_at=job.first_received_at,
            last_received_at=job.last_received_at,
            watch=WatchOut.of(State(job.state), watch, configured=Provider(job.provider) in polled),
        )


class RawOut(Out):
    """The latest delivery that touched the job, as the provider sent it."""

    delivery_id: int
    received_at: datetime
    content_type: str | None
    body: BodyOut | None = Field(description="null once retention has dropped the body")

    @classmethod
    def of(cls, delivery: models.Delivery) -> RawOut:
        return cls(
            delivery_id=delivery.id,
            received_at=delivery.received_at,
            content_type=delivery.content_type,
            body=BodyOut.of(delivery.body),
        )


class JobDetailOut(JobOut):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.JOB_DETAIL]})

    raw: RawOut | None = Field(
        default=None, description="only with ?include=raw: the latest delivery's payload"
    )


class EventOut(Out):
    """One state change: `from` is null when the delivery created the job."""

    from_state: State | None = Field(serialization_alias="from")
    to_state: State = Field(serialization_alias="to")
    at: datetime
    delivery_id: int

    @classmethod
    def of(cls, event: models.JobEvent) -> EventOut:
        return cls(
            from_state=None if event.from_state is None else State(event.from_state),
            to_state=State(event.to_state),
            at=event.at,
            delivery_id=event.delivery_id,
        )


class EventsOut(Out):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.EVENTS]})

    items: list[EventOut]


def _file(file: FileView | None, href: str) -> FileOut | None:
    return None if file is None else FileOut.of(file, href=href)


def _error(job: models.Job) -> JobErrorOut | None:
    if job.error_code is None:
        return None
    return JobErrorOut(code=job.error_code, message=job.error_message or "")


def _tts(job: models.Job) -> TtsOut | None:
    if job.tts_input is None and job.tts_input_type is None:
        return None
    return TtsOut(input=job.tts_input, input_type=job.tts_input_type)


def _workflow(job: models.Job) -> WorkflowOut | None:
    values = (job.workflow_id, job.workflow_name, job.workflow_run_id, job.workflow_node)
    if all(value is None for value in values):
        return None
    return WorkflowOut(
        workflow_id=job.workflow_id,
        workflow_name=job.workflow_name,
        run_id=job.workflow_run_id,
        name=job.workflow_node,
    )


def _optional(model: type[M], data: dict[str, Any] | None) -> M | None:
    return None if data is None else model.model_validate(data)

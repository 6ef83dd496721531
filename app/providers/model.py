"""The normalized job every provider family is turned into.

Plain dataclasses, frozen to the type checker (`normalized`): parsing sits on the hot path of
every callback, and these cost a fraction of a validating model. Validation happens while they
are built, in the parsers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TypeVar, dataclass_transform

_Value = TypeVar("_Value")


@dataclass_transform(frozen_default=True, kw_only_default=True, field_specifiers=(field,))
def normalized(cls: type[_Value]) -> type[_Value]:
    """A dataclass that is read and never changed: frozen to the type checker (mypy refuses any
    assignment to its fields), a plain slotted dataclass at run time, hashed and compared as a
    frozen one. Not frozen at run time, because frozen's guard sets every field through
    object.__setattr__, which makes building one several times as slow on the write path."""
    return dataclass(slots=True, kw_only=True, unsafe_hash=True)(cls)


class Provider(StrEnum):
    TENCENT_CI = "tencent-ci"
    MEDIA_LAB = "tencent-media-lab"
    SUNO = "suno"


class State(StrEnum):
    SUBMITTED = "submitted"
    RUNNING = "running"
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATES


FINAL_STATES = frozenset({State.SUCCEEDED, State.FAILED, State.CANCELED})


class Role(StrEnum):
    VOCALS = "vocals"
    ACCOMPANIMENT = "accompaniment"
    DRUMS = "drums"
    BASS = "bass"
    PIANO = "piano"
    OTHER = "other"
    BACKING_VOCALS = "backing_vocals"
    GUITAR = "guitar"
    KEYBOARD = "keyboard"
    PERCUSSION = "percussion"
    STRINGS = "strings"
    SYNTH = "synth"
    FX = "fx"
    BRASS = "brass"
    WOODWINDS = "woodwinds"
    ORIGINAL = "original"
    SPEECH = "speech"
    OUTPUT = "output"


class ParseError(ValueError):
    """The payload cannot be turned into jobs; the message says what was wrong with it."""


@normalized
class InputRef:
    bucket: str | None = None
    region: str | None = None
    object: str | None = None
    url: str | None = None


@normalized
class OutputFile:
    role: Role
    url: str | None = None
    bucket: str | None = None
    region: str | None = None
    object: str | None = None
    content_id: str | None = None
    destination: str | None = None
    file_name: str | None = None
    md5: str | None = None


@normalized
class AudioStream:
    codec: str | None = None
    sample_rate: int | None = None
    channels: int | None = None
    bitrate_kbps: float | None = None
    duration_s: float | None = None


@normalized
class MediaInfo:
    format_name: str | None = None
    duration_s: float | None = None
    bitrate_kbps: float | None = None
    size_bytes: int | None = None
    audio_streams: tuple[AudioStream, ...] = ()


@normalized
class Tts:
    input: str | None = None
    input_type: str | None = None


@normalized
class Workflow:
    workflow_id: str | None = None
    workflow_name: str | None = None
    run_id: str | None = None
    name: str | None = None


@normalized
class WorkflowTask:
    """One node of a CI workflow run, as listed by its WorkflowFinish callback."""

    type: str | None = None
    name: str | None = None
    job_id: str | None = None
    state: State | None = None
    provider_state: str | None = None
    template_id: str | None = None
    template_name: str | None = None
    created_at: datetime | None = None
    finished_at: datetime | None = None


@normalized
class JobError:
    code: str
    message: str


@normalized
class Job:
    """One provider job as one callback describes it; all times are aware UTC datetimes."""

    provider: Provider
    job_id: str
    kind: str
    state: State
    provider_state: str
    error: JobError | None = None
    custom_id: str | None = None
    user_data: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    input: InputRef = field(default_factory=InputRef)
    outputs: tuple[OutputFile, ...] = ()
    media_info: MediaInfo | None = None
    tts: Tts | None = None
    workflow: Workflow | None = None
    tasks: tuple[WorkflowTask, ...] | None = None
    template_id: str | None = None
    template_name: str | None = None
    queue_id: str | None = None

"""Query parameters of the listings, validated once: a wrong value is a 422 naming the field.

Unknown parameters are refused too, so that a misspelt filter cannot silently return everything.
Times are ISO-8601; one without an offset is taken as UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from app.ingest.intake import Outcome
from app.mirror.sources import FileStatus
from app.polling.watches import WatchStatus
from app.providers.model import Provider, State
from app.queries.deliveries import DeliveryFilter
from app.queries.jobs import JobFilter


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        # 0001-01-01T00:00+01:00 has no UTC datetime: a 422 for the field, not a 500.
        raise ValueError("out of range once converted to UTC") from None


Time = Annotated[datetime, AfterValidator(_as_utc)]
Limit = Annotated[int, Field(ge=1, le=500, description="page size")]
Cursor = Annotated[str | None, Field(description="next_cursor of the previous page")]
NoNul = Field(max_length=255, pattern=r"^[^\x00]*$")


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JobParams(_Params):
    provider: Provider | None = None
    kind: Annotated[str | None, Field(max_length=64, pattern=r"^[^\x00]*$")] = None
    state: list[State] = Field(default=[], description="repeat for several states")
    custom_id: Annotated[str | None, NoNul] = None
    user_data: Annotated[str | None, Field(max_length=4096, pattern=r"^[^\x00]*$")] = None
    created_after: Time | None = None
    created_before: Time | None = None
    received_after: Time | None = None
    received_before: Time | None = None
    has_error: bool | None = None
    files: FileStatus | None = Field(
        default=None,
        description="jobs with at least one output file in this status; asked afresh on every"
        " page (a file's status changes without its job changing)",
    )
    watch: list[WatchStatus] = Field(
        default=[],
        description="jobs whose watch shows this status (repeat for several): `polling` and"
        " `gave_up` find the jobs whose callback is late",
    )
    limit: Limit = 50
    cursor: Cursor = None

    def filter(self, *, polled: frozenset[Provider]) -> JobFilter:
        return JobFilter(
            provider=self.provider,
            kind=self.kind,
            states=tuple(self.state),
            custom_id=self.custom_id,
            user_data=self.user_data,
            created_after=self.created_after,
            created_before=self.created_before,
            received_after=self.received_after,
            received_before=self.received_before,
            has_error=self.has_error,
            files=self.files,
            watch=tuple(self.watch),
            polled=polled,
        )


class DeliveryParams(_Params):
    outcome: list[Outcome] = Field(default=[], description="repeat for several outcomes")
    provider: Provider | None = None
    received_after: Time | None = None
    received_before: Time | None = None
    limit: Limit = 50
    cursor: Cursor = None

    def filter(self) -> DeliveryFilter:
        return DeliveryFilter(
            outcomes=tuple(self.outcome),
            provider=self.provider,
            received_after=self.received_after,
            received_before=self.received_before,
        )


class PageParams(_Params):
    limit: Limit = 50
    cursor: Cursor = None


class WindowParams(_Params):
    since: Time | None = Field(default=None, description="default: 24 hours before until")
    until: Time | None = Field(default=None, description="default: now")

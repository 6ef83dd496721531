"""Counts over a window of time."""

from __future__ import annotations

from datetime import datetime

from pydantic import ConfigDict, Field

from app.api.schemas import examples
from app.api.schemas.common import Out
from app.ingest.intake import Outcome
from app.mirror.sources import FileStatus
from app.providers.model import Provider, State
from app.queries.files import FileCounts
from app.queries.stats import Stats


class JobCountOut(Out):
    provider: Provider
    state: State
    count: int


class FileCountsOut(Out):
    """The output files of the jobs counted, by status, and the bytes of those stored."""

    pending: int
    stored: int
    failed: int
    skipped: int
    stored_bytes: int

    @classmethod
    def of(cls, counts: FileCounts) -> FileCountsOut:
        by_status = counts.by_status
        return cls(
            pending=by_status[FileStatus.PENDING],
            stored=by_status[FileStatus.STORED],
            failed=by_status[FileStatus.FAILED],
            skipped=by_status[FileStatus.SKIPPED],
            stored_bytes=counts.stored_bytes,
        )


class DeliveryCountOut(Out):
    outcome: Outcome
    count: int


class StatsOut(Out):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.STATS]})

    since: datetime
    until: datetime
    jobs: list[JobCountOut]
    files: FileCountsOut = Field(description="of the jobs last received in the window")
    deliveries: list[DeliveryCountOut]

    @classmethod
    def of(cls, stats: Stats, *, since: datetime, until: datetime) -> StatsOut:
        return cls(
            since=since,
            until=until,
            jobs=[
                JobCountOut(provider=Provider(provider), state=State(state), count=count)
                for provider, state, count in stats.jobs
            ],
            files=FileCountsOut.of(stats.files),
            deliveries=[
                DeliveryCountOut(outcome=Outcome(outcome), count=count)
                for outcome, count in stats.deliveries
            ],
        )

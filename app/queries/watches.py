"""The watches of jobs (app/polling/watches.py): what the API shows of each."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app import models


@dataclass(frozen=True, slots=True, kw_only=True)
class WatchView:
    """A job_watch row as stored: its status is read with the job's state and the settings
    (`watch_status`)."""

    status: str
    polls: int
    last_polled_at: datetime | None
    run_after: datetime | None
    last_error: str | None


async def watches_of(session: AsyncSession, job_pks: Sequence[int]) -> dict[int, WatchView]:
    """The watches of these jobs that have one, in one query (the job_pk unique index)."""
    if not job_pks:
        return {}
    w = models.JobWatch
    rows = await session.execute(
        select(w.job_pk, w.status, w.polls, w.last_polled_at, w.run_after, w.last_error).where(
            w.job_pk.in_(job_pks)
        )
    )
    return {
        row.job_pk: WatchView(
            status=row.status,
            polls=row.polls,
            last_polled_at=row.last_polled_at,
            run_after=row.run_after,
            last_error=row.last_error,
        )
        for row in rows
    }

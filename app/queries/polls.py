"""Polls counted for /metrics: the providers' answers stored, by provider and outcome, and the
watches still open or given up, by provider and status (those whose last poll failed apart)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app import models
from app.models import POLL_ANSWERS
from app.polling.watches import WatchStatus

# Done watches are most of them and grow without end; these stay few, and are read through the
# (status, job_pk) index.
COUNTED_WATCHES = (WatchStatus.WAITING, WatchStatus.POLLING, WatchStatus.GAVE_UP)


@dataclass(frozen=True, slots=True)
class PollCounts:
    # (provider, outcome, deliveries)
    answers: list[tuple[str, str, int]]
    # (provider, status, watches, of them those whose last poll failed)
    watches: list[tuple[str, str, int, int]]


async def poll_counts(session: AsyncSession) -> PollCounts:
    delivery, watch, job = models.Delivery, models.JobWatch, models.Job
    answers = await session.execute(
        select(delivery.provider, delivery.outcome, func.count())
        .where(text(POLL_ANSWERS))  # as the index says it, so that both databases use it
        .group_by(delivery.provider, delivery.outcome)
        .order_by(delivery.provider, delivery.outcome)
    )
    watches = await session.execute(
        select(job.provider, watch.status, func.count(), func.count(watch.last_error))
        .join(job, job.id == watch.job_pk)
        .where(watch.status.in_([status.value for status in COUNTED_WATCHES]))
        .group_by(job.provider, watch.status)
        .order_by(job.provider, watch.status)
    )
    return PollCounts(
        [(provider or "unknown", outcome, count) for provider, outcome, count in answers],
        [(provider, status, count, failing) for provider, status, count, failing in watches],
    )

"""Counts over a time window: jobs by provider and state, their output files by status,
deliveries by outcome."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app import models
from app.queries.files import FileCounts, file_counts


@dataclass(frozen=True, slots=True)
class Stats:
    jobs: list[tuple[str, str, int]]
    files: FileCounts
    deliveries: list[tuple[str, int]]


async def window_stats(session: AsyncSession, *, since: datetime, until: datetime) -> Stats:
    """Jobs last received in [since, until) and their files, deliveries received in
    [since, until)."""
    job, delivery = models.Job, models.Delivery
    jobs = await session.execute(
        select(job.provider, job.state, func.count())
        .where(job.last_received_at >= since, job.last_received_at < until)
        .group_by(job.provider, job.state)
        .order_by(job.provider, job.state)
    )
    deliveries = await session.execute(
        select(delivery.outcome, func.count())
        .where(delivery.received_at >= since, delivery.received_at < until)
        .group_by(delivery.outcome)
        .order_by(delivery.outcome)
    )
    return Stats(
        [(provider, state, count) for provider, state, count in jobs],
        await file_counts(session, received=(since, until)),
        [(outcome, count) for outcome, count in deliveries],
    )

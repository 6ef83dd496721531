"""Counts over a time window: jobs by provider and state, their output files by status,
deliveries by outcome."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from app import models
from app.db import UtcDateTime
from app.queries.files import FileCounts, file_counts


@dataclass(frozen=True, slots=True)
class Stats:
    jobs: list[tuple[str, str, int]]
    files: FileCounts
    deliveries: list[tuple[str, int]]


Hourly = dict[tuple[int, str], int]


async def window_stats(session: AsyncSession, *, since: datetime, until: datetime) -> Stats:
    """Jobs last received in [since, until) and their files, deliveries received in
    [since, until)."""
    delivery = models.Delivery
    deliveries = await session.execute(
        select(delivery.outcome, func.count())
        .where(delivery.received_at >= since, delivery.received_at < until)
        .group_by(delivery.outcome)
        .order_by(delivery.outcome)
    )
    return Stats(
        await _job_counts(session, since=since, until=until),
        await file_counts(session, received=(since, until)),
        [(outcome, count) for outcome, count in deliveries],
    )


async def hourly_stats(
    session: AsyncSession, *, since: datetime, hours: int
) -> tuple[Stats, Hourly]:
    """window_stats over `hours` whole hours from `since`, and its deliveries hour by hour
    (deliveries_by_hour): each delivery is read once, the window's counts are the hours' sums."""
    until = since + timedelta(hours=hours)
    hourly = await deliveries_by_hour(session, since=since, hours=hours)
    outcomes: dict[str, int] = {}
    for (_hour, outcome), count in hourly.items():
        outcomes[outcome] = outcomes.get(outcome, 0) + count
    stats = Stats(
        await _job_counts(session, since=since, until=until),
        await file_counts(session, received=(since, until)),
        sorted(outcomes.items()),
    )
    return stats, hourly


async def _job_counts(
    session: AsyncSession, *, since: datetime, until: datetime
) -> list[tuple[str, str, int]]:
    job = models.Job
    jobs = await session.execute(
        select(job.provider, job.state, func.count())
        .where(job.last_received_at >= since, job.last_received_at < until)
        .group_by(job.provider, job.state)
        .order_by(job.provider, job.state)
    )
    return [(provider, state, count) for provider, state, count in jobs]


async def deliveries_by_hour(session: AsyncSession, *, since: datetime, hours: int) -> Hourly:
    """Deliveries received in each of `hours` hours from `since`, by outcome: {(hour, outcome):
    count}, hour 0 the first. One range scan of the received_at index."""
    delivery = models.Delivery
    ends = [literal(since + timedelta(hours=hour + 1), UtcDateTime()) for hour in range(hours)]
    hour = case(*((delivery.received_at < end, index) for index, end in enumerate(ends)))
    # Grouped outside: PostgreSQL cannot tell that a GROUP BY of the same CASE, its times bound
    # anew, is the selected expression.
    received = (
        select(hour.label("hour"), delivery.outcome)
        .where(
            delivery.received_at >= literal(since, UtcDateTime()), delivery.received_at < ends[-1]
        )
        .subquery()
    )
    rows = await session.execute(
        select(received.c.hour, received.c.outcome, func.count()).group_by(
            received.c.hour, received.c.outcome
        )
    )
    return {(hour_index, outcome): count for hour_index, outcome, count in rows}

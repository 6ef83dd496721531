"""Finding deliveries: the raw inbox, newest first, and the deliveries behind one job.

Delivery ids only grow, so keyset paging by id neither skips nor repeats while callbacks arrive.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    ColumnElement,
    ScalarSelect,
    Select,
    exists,
    func,
    literal,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app import models
from app.ingest.intake import Outcome
from app.providers.model import Provider


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryFilter:
    outcomes: tuple[Outcome, ...] = ()
    provider: Provider | None = None
    received_after: datetime | None = None
    received_before: datetime | None = None


@dataclass(frozen=True, slots=True)
class DeliveryPage:
    deliveries: list[models.Delivery]
    next_before_id: int | None


@dataclass(frozen=True, slots=True)
class JobDeliveryPage:
    """A job's deliveries, each with whether it left the job's state as it was."""

    items: list[tuple[models.Delivery, bool]]
    next_before_id: int | None


@dataclass(frozen=True, slots=True)
class LinkedJob:
    provider: str
    job_id: str
    duplicate: bool
    claimed_state: str | None


@dataclass(frozen=True, slots=True)
class DeliveryDetail:
    delivery: models.Delivery
    jobs: list[LinkedJob]
    replays: list[models.Delivery]


async def list_deliveries(
    session: AsyncSession, where: DeliveryFilter, *, limit: int, before_id: int | None
) -> DeliveryPage:
    delivery = models.Delivery
    conditions: list[ColumnElement[bool]] = []
    if where.provider is not None:
        conditions.append(delivery.provider == where.provider)
    if where.received_after is not None:
        conditions.append(delivery.received_at >= where.received_after)
    if where.received_before is not None:
        conditions.append(delivery.received_at < where.received_before)

    if before_id is not None:
        conditions.append(delivery.id < before_id)
    window_first = await _window_first(session, where, before_id)
    statement = _newest(conditions, where.outcomes, limit + 1, window_first=window_first)
    found = list((await session.scalars(statement)).all())
    page = found[:limit]
    return DeliveryPage(page, page[-1].id if len(found) > limit else None)


async def _window_first(
    session: AsyncSession, where: DeliveryFilter, before_id: int | None
) -> bool:
    """Whether to read the time window's deliveries whole rather than walk ids newest first until
    a page of them is found. The walk passes every delivery received after the window (below the
    cursor), which the planners take for matches spread evenly: they do not know that ids grow
    with received_at (record 20). Both costs are guessed from the ids at the window's edges; the
    answer decides only how the page is found, never which deliveries it holds."""
    if where.received_before is None:
        return False  # open at the top: the walk is in the window from its first step
    delivery = models.Delivery

    def first_received(moment: datetime) -> ScalarSelect[int | None]:
        return (
            select(delivery.id)
            .where(delivery.received_at >= moment)
            .order_by(delivery.received_at)
            .limit(1)
            .scalar_subquery()
        )

    after = first_received(where.received_before)
    newest = select(func.max(delivery.id)).scalar_subquery()
    oldest = literal(0) if where.received_after is None else first_received(where.received_after)
    edges = (await session.execute(select(after, newest, oldest))).one()
    after_id: int | None = edges[0]
    newest_id: int = edges[1]
    oldest_id: int | None = edges[2]
    if after_id is None:
        return False  # nothing came after the window
    walked = (newest_id + 1 if before_id is None else before_id) - after_id
    in_window = 0 if oldest_id is None else after_id - oldest_id
    return in_window < walked


def _newest(
    conditions: list[ColumnElement[bool]],
    outcomes: tuple[Outcome, ...],
    limit: int,
    *,
    window_first: bool,
) -> Select[models.Delivery]:
    """The newest `limit` deliveries meeting the conditions with one of the outcomes (any when
    none is given). Window first: the ids of every delivery in it (fenced off as a materialized
    CTE, so that no planner turns it back into the walk), their newest taken. Otherwise a walk
    newest first; several outcomes are one walk of the (outcome, id) index each, merged: as one
    IN, SQLite with statistics walks every delivery by id when fewer than a page match (a day's
    rejected ones: 86 ms at 200,000 deliveries), not knowing how rare they are."""
    delivery = models.Delivery
    if window_first:
        if outcomes:
            conditions = [delivery.outcome.in_(outcomes), *conditions]
        window = select(delivery.id).where(*conditions).cte("in_window").prefix_with("MATERIALIZED")
        newest = select(window.c.id).order_by(window.c.id.desc()).limit(limit)
        conditions = [delivery.id.in_(newest)]
    elif len(outcomes) > 1:
        walks = [
            select(delivery.id)
            .where(delivery.outcome == outcome, *conditions)
            .order_by(delivery.id.desc())
            .limit(limit)
            .subquery()
            for outcome in outcomes
        ]
        merged = union_all(*(select(walk.c.id) for walk in walks)).subquery()
        conditions = [delivery.id.in_(select(merged.c.id))]
    elif outcomes:
        conditions = [delivery.outcome == outcomes[0], *conditions]
    return select(delivery).where(*conditions).order_by(delivery.id.desc()).limit(limit)


async def job_deliveries(
    session: AsyncSession, job_pk: int, *, limit: int, before_id: int | None
) -> JobDeliveryPage:
    link = models.DeliveryJob
    statement = (
        select(models.Delivery, link.duplicate)
        .join(link, link.delivery_id == models.Delivery.id)
        .where(link.job_pk == job_pk)
    )
    if before_id is not None:
        statement = statement.where(models.Delivery.id < before_id)
    statement = statement.order_by(models.Delivery.id.desc()).limit(limit + 1)
    found = [(delivery, duplicate) for delivery, duplicate in await session.execute(statement)]
    page = found[:limit]
    return JobDeliveryPage(page, page[-1][0].id if len(found) > limit else None)


async def find_delivery(session: AsyncSession, delivery_id: int) -> DeliveryDetail | None:
    delivery = await session.get(models.Delivery, delivery_id)
    if delivery is None:
        return None
    link = models.DeliveryJob
    linked = await session.execute(
        select(models.Job.provider, models.Job.job_id, link.duplicate, link.claimed_state)
        .join(link, link.job_pk == models.Job.id)
        .where(link.delivery_id == delivery_id)
        .order_by(models.Job.id)
    )
    replays = await session.scalars(
        select(models.Delivery)
        .where(models.Delivery.replay_of == delivery_id)
        .order_by(models.Delivery.id)
    )
    return DeliveryDetail(
        delivery,
        [LinkedJob(*row) for row in linked],
        list(replays.all()),
    )


async def first_arrival(session: AsyncSession, delivery: models.Delivery) -> datetime:
    """When the callback a delivery carries first came: its own arrival, or for a replay (of a
    replay, ...) the original's, found up the replay_of chain in one query."""
    if delivery.replay_of is None:
        return delivery.received_at
    row = models.Delivery
    chain = (
        select(row.id, row.replay_of, row.received_at)
        .where(row.id == delivery.replay_of)
        .cte("chain", recursive=True)
    )
    chain = chain.union_all(
        select(row.id, row.replay_of, row.received_at).where(row.id == chain.c.replay_of)
    )
    statement = select(chain.c.received_at).where(chain.c.replay_of.is_(None))
    original: datetime = (await session.execute(statement)).scalar_one()
    return original


async def replay_candidates(
    session: AsyncSession,
    *,
    outcomes: tuple[Outcome, ...],
    since: datetime | None,
    again: bool,
) -> list[int]:
    """Original deliveries (not replays) with these outcomes whose body is still kept; unless
    `again`, those a replay has already turned into jobs are left out."""
    delivery, replay = models.Delivery, aliased(models.Delivery)
    statement = select(delivery.id).where(
        delivery.outcome.in_(outcomes), delivery.replay_of.is_(None), delivery.body.is_not(None)
    )
    if since is not None:
        statement = statement.where(delivery.received_at >= since)
    if not again:
        turned_into_jobs = exists().where(
            replay.replay_of == delivery.id,
            replay.outcome.in_((Outcome.ACCEPTED, Outcome.DUPLICATE)),
        )
        statement = statement.where(~turned_into_jobs)
    return list((await session.scalars(statement.order_by(delivery.id))).all())

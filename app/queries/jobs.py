"""Finding jobs: one by its key, or a filtered page newest first, stable while being written to.

Paging is keyset paging over (last received, id), with a snapshot: the first page notes the
transaction mark (app/queries/marks.py: every change below it is final, every later one at or
above it), and every later page shows the jobs as they were at that mark. A job touched after it
would otherwise jump to the top, behind the reader, and be skipped; instead it keeps its place,
keyed by its newest delivery below the mark. Jobs first seen at or after the mark are left to
the next listing. This holds with writers committing in parallel, in any order.

The `files` filter is the exception to the snapshot: a file's status changes without its job
changing, so each page asks it as it is then. A job keeps its place in the order either way;
one whose files change between pages enters or leaves the listing if the reader has not reached
it yet, and the others are listed once each, none skipped.

A later page's cost grows with the jobs touched since its mark (they are read apart), so a
cursor is held to what a real page could have given: its mark is not ahead of the database's,
and its listing began no longer ago than the caller allows (the first job changed at or after
the mark arrived since then). Both are one indexed look-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, case, exists, func, literal, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from app import models
from app.db import Id, UtcDateTime
from app.errors import InvalidRequest
from app.mirror.sources import FileStatus
from app.polling.watches import WatchStatus
from app.providers.model import Provider, State
from app.queries.marks import current_mark

MAX_ID = 2**63 - 1


@dataclass(frozen=True, slots=True, kw_only=True)
class JobFilter:
    """Every given condition must hold; `after` bounds are inclusive, `before` exclusive."""

    provider: Provider | None = None
    kind: str | None = None
    states: tuple[State, ...] = ()
    custom_id: str | None = None
    user_data: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    received_after: datetime | None = None
    received_before: datetime | None = None
    has_error: bool | None = None
    # Jobs with at least one output file in this status.
    files: FileStatus | None = None
    # Jobs whose watch shows one of these statuses, `polled` the providers configured to be
    # polled (the status depends on it).
    watch: tuple[WatchStatus, ...] = ()
    polled: frozenset[Provider] = frozenset()


@dataclass(frozen=True, slots=True)
class JobPosition:
    """Where a page ended: the snapshot's transaction mark and the last job's (key, id)."""

    mark: int
    received_at: datetime
    job_pk: int


@dataclass(frozen=True, slots=True)
class JobPage:
    jobs: list[models.Job]
    next: JobPosition | None


async def find_job(session: AsyncSession, provider: Provider, job_id: str) -> models.Job | None:
    statement = select(models.Job).where(
        models.Job.provider == provider, models.Job.job_id == job_id
    )
    job: models.Job | None = await session.scalar(statement)
    return job


async def job_events(session: AsyncSession, job_pk: int) -> list[models.JobEvent]:
    statement = (
        select(models.JobEvent).where(models.JobEvent.job_pk == job_pk).order_by(models.JobEvent.id)
    )
    return list((await session.scalars(statement)).all())


async def list_jobs(
    session: AsyncSession,
    where: JobFilter,
    *,
    limit: int,
    after: JobPosition | None,
    began_since: datetime,
) -> JobPage:
    """A page of jobs; `after` (a previous page's end) must come from a listing that began at
    or after `began_since`."""
    if after is not None:
        await _check_snapshot(session, after.mark, began_since)
    mark = after.mark if after else await current_mark(session)
    # Two reads, each able to see commits the other missed: a job may show up in both, keyed
    # alike, and is kept once.
    keyed: dict[int, tuple[datetime, models.Job]] = {}
    for key, job in await _settled(session, where, mark, after, limit + 1):
        keyed[job.id] = (key, job)
    for key, job in await _touched_since(session, where, mark, after, limit + 1):
        keyed[job.id] = (key, job)
    ordered = sorted(keyed.values(), key=lambda item: (item[0], item[1].id), reverse=True)
    page = ordered[:limit]
    more = len(ordered) > limit
    last_key, last_job = page[-1] if page else (None, None)
    next_position = (
        JobPosition(mark, last_key, last_job.id) if more and last_job and last_key else None
    )
    return JobPage([job for _key, job in page], next_position)


async def _check_snapshot(session: AsyncSession, mark: int, began_since: datetime) -> None:
    if mark > await current_mark(session):
        raise InvalidRequest("cursor: no page ever ended there; pass back next_cursor unchanged")
    first_changed = (
        select(models.Job.last_received_at)
        .where(models.Job.last_tx.between(mark, MAX_ID))
        .order_by(models.Job.last_tx)
        .limit(1)
    )
    changed_at = await session.scalar(first_changed)
    if changed_at is not None and changed_at < began_since:
        raise InvalidRequest("cursor: expired (STEMHOOK_CURSOR_MAX_AGE); start the listing again")


async def _settled(
    session: AsyncSession,
    where: JobFilter,
    mark: int,
    after: JobPosition | None,
    limit: int,
) -> list[tuple[datetime, models.Job]]:
    """Jobs whose last change is final at the mark: their last receipt is their key (index
    order)."""
    key = models.Job.last_received_at.expression
    statement = (
        select(models.Job)
        .where(models.Job.last_tx < mark, *_conditions(where, key, after))
        .order_by(key.desc(), models.Job.id.desc())
        .limit(limit)
    )
    jobs = (await session.scalars(statement)).all()
    return [(job.last_received_at, job) for job in jobs]


async def _touched_since(
    session: AsyncSession,
    where: JobFilter,
    mark: int,
    after: JobPosition | None,
    limit: int,
) -> list[tuple[datetime, models.Job]]:
    """Jobs changed at or after the mark, keyed by their newest delivery below it, or where
    none is, by their registration if that was below it. A delivery whose claim was held
    (STEMHOOK_CONFIRM_BY_POLL) merged nothing into the job, its receipt time included, so it
    keys nothing either."""
    job = models.Job
    delivered = (
        select(func.max(models.Delivery.received_at))
        .join(models.DeliveryJob, models.DeliveryJob.delivery_id == models.Delivery.id)
        .where(
            models.DeliveryJob.job_pk == job.id,
            models.DeliveryJob.claimed_state.is_(None),
            models.Delivery.tx < mark,
        )
        .scalar_subquery()
    )
    registered = case((job.registered_tx < literal(mark, Id), job.first_received_at))
    key = func.coalesce(delivered, registered)
    statement = (
        select(models.Job, key)
        .where(
            # A closed range, not ">= mark": SQLite guesses an open one matches a quarter of
            # the table and scans the filter's index instead (85 ms at 1M jobs, vs 0.2 ms).
            models.Job.last_tx.between(mark, MAX_ID),
            key.is_not(None),
            *_conditions(where, key, after),
        )
        .order_by(key.desc(), models.Job.id.desc())
        .limit(limit)
    )
    rows = (await session.execute(statement)).all()
    return [(received, job) for job, received in rows]


def _conditions(
    where: JobFilter, received: ColumnElement[datetime], after: JobPosition | None
) -> list[ColumnElement[bool]]:
    job = models.Job
    conditions: list[ColumnElement[bool]] = []
    if where.provider is not None:
        conditions.append(job.provider == where.provider)
    if where.kind is not None:
        conditions.append(job.kind == where.kind)
    if where.states:
        conditions.append(job.state.in_(where.states))
    if where.custom_id is not None:
        conditions.append(job.custom_id == where.custom_id)
    if where.user_data is not None:
        conditions.append(job.user_data == where.user_data)
    if where.created_after is not None:
        conditions.append(job.created_at >= where.created_after)
    if where.created_before is not None:
        conditions.append(job.created_at < where.created_before)
    if where.received_after is not None:
        conditions.append(received >= literal(where.received_after, UtcDateTime()))
    if where.received_before is not None:
        conditions.append(received < literal(where.received_before, UtcDateTime()))
    if where.has_error is not None:
        conditions.append(
            job.error_code.is_not(None) if where.has_error else job.error_code.is_(None)
        )
    if where.files is not None:
        # One probe of the (status, job_pk) index per job the listing walks.
        file = models.JobFile
        conditions.append(exists().where(file.status == where.files.value, file.job_pk == job.id))
    if where.watch:
        conditions.append(or_(*(_watched(status, where.polled) for status in where.watch)))
    if after is not None:
        # A row comparison, so that both databases can start the index scan at the cursor.
        conditions.append(
            tuple_(received, job.id)
            < tuple_(literal(after.received_at, UtcDateTime()), literal(after.job_pk, Id))
        )
    return conditions


def _watched(status: WatchStatus, polled: frozenset[Provider]) -> ColumnElement[bool]:
    """Jobs whose watch shows `status` (app/polling/watches.py `watch_status`, as SQL): one
    probe of the job_pk unique index per job the listing walks."""
    job, watch = models.Job, models.JobWatch

    def stored(*statuses: WatchStatus) -> ColumnElement[bool]:
        return exists().where(
            watch.job_pk == job.id, watch.status.in_([value.value for value in statuses])
        )

    configured = job.provider.in_([provider.value for provider in polled])
    if status is WatchStatus.IDLE:
        return ~exists().where(watch.job_pk == job.id)
    if status is WatchStatus.NOT_CONFIGURED:
        return and_(stored(WatchStatus.WAITING, WatchStatus.POLLING), ~configured)
    if status in (WatchStatus.WAITING, WatchStatus.POLLING):
        return and_(stored(status), configured)
    return stored(status)

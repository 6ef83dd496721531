"""Registering a job before its provider says anything of it (PUT /v1/jobs/.../expect), and
asking for a poll now (POST .../poll).

Web-process writes beside the writer's transactions, like re-queueing failed files
(app/mirror/retry.py): each a transaction of its own whose first statement is the write, so on
SQLite it waits for the write lock as long as busy_timeout allows and holds it for that
transaction only. A registration creates the job (state submitted, no delivery) and its watch
together, or changes nothing where the job exists: the job's unique key decides, not a read
first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import BigInteger, ColumnElement, Text, cast, func, literal, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import models
from app.polling.watches import WatchPolicy, WatchStatus
from app.providers.model import Provider, State

# What a registered job shows until a delivery says more: the provider has named neither its
# kind nor a state of its own.
UNKNOWN_KIND = "unknown"
NO_PROVIDER_STATE = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Registration:
    """What the caller knows of a job it has just submitted; delays None: the settings'."""

    custom_id: str | None = None
    user_data: str | None = None
    # Tencent CI: where the job runs, which its poll is addressed to.
    bucket: str | None = None
    region: str | None = None
    poll_after: timedelta | None = None
    give_up_after: timedelta | None = None


async def expect_job(
    sessions: async_sessionmaker[AsyncSession],
    provider: Provider,
    job_id: str,
    registration: Registration,
    *,
    now: datetime,
    policy: WatchPolicy,
) -> bool:
    """Create the job, submitted and watched, unless it exists; whether it was created."""
    async with sessions.begin() as session:
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        job = models.Job
        created = await session.scalar(
            insert(job)
            .values(
                provider=provider.value,
                job_id=job_id,
                kind=UNKNOWN_KIND,
                state=State.SUBMITTED.value,
                provider_state=NO_PROVIDER_STATE,
                custom_id=registration.custom_id,
                user_data=registration.user_data,
                input_bucket=registration.bucket,
                input_region=registration.region,
                deliveries=0,
                first_received_at=now,
                last_received_at=now,
                last_tx=_transaction_number(dialect),
                registered_tx=_transaction_number(dialect),
            )
            .on_conflict_do_nothing(index_elements=[job.provider, job.job_id])
            .returning(job.id)
        )
        if created is None:
            return False
        row = policy.watch_row(
            job_pk=created,
            provider=provider,
            heard_at=now,
            poll_after=registration.poll_after,
            give_up_after=registration.give_up_after,
        )
        await session.execute(insert(models.JobWatch).values(**row))
    return True


def _transaction_number(dialect: str) -> ColumnElement[int]:
    """The job's `last_tx` (app/queries/marks.py): on PostgreSQL this transaction's id, as the
    writers' rows have it; on SQLite, whose writers take turns, 0, final at once (its mark
    counts deliveries, and this transaction writes none)."""
    if dialect == "postgresql":
        return cast(cast(func.pg_current_xact_id(), Text), BigInteger)
    return literal(0, BigInteger)


async def poll_now(
    sessions: async_sessionmaker[AsyncSession], job_pk: int, *, now: datetime
) -> bool:
    """Make the job's watch due now, one given up on included (it is polled once more, then
    given up again if still unfinished); False when there is no open watch: the job is final,
    or arrived so."""
    watch = models.JobWatch
    due = (
        update(watch)
        .where(watch.job_pk == job_pk, watch.status != WatchStatus.DONE.value)
        .values(
            run_after=now,
            # Not `waiting`: the wait for a job heard of lately would put the poll off
            # (app/polling/schedule.py).
            status=WatchStatus.POLLING.value,
        )
        .returning(watch.id)
        .execution_options(synchronize_session=False)
    )
    async with sessions.begin() as session:
        return (await session.scalar(due)) is not None

"""Queueing a job's failed files again, on an operator's request (POST .../files/retry).

The web process's one write, beside the writer's transactions: a single UPDATE in a transaction
of its own, guarded by status = 'failed', so that it is idempotent and touches no row a worker
holds (a failed row is final and leased to nobody). Its first statement is the write, so on
SQLite it waits for the write lock as long as busy_timeout allows, like a writer, and holds it
for that one statement.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import models
from app.mirror.sources import FileStatus


async def retry_failed(
    sessions: async_sessionmaker[AsyncSession], job_pk: int, *, now: datetime
) -> list[int]:
    """Make the job's failed files due now, their tries and their last outcome forgotten; the
    positions queued."""
    file = models.JobFile
    requeue = (
        update(file)
        .where(file.job_pk == job_pk, file.status == FileStatus.FAILED.value)
        .values(
            status=FileStatus.PENDING.value,
            attempts=0,
            error=None,
            # Set by a try whose MD5 did not match, and about no stored copy.
            md5_verified=None,
            run_after=now,
            leased_by=None,
            leased_until=None,
        )
        .returning(file.position)
        # Nothing loaded in this session to keep in step: no look at the rows in Python first.
        .execution_options(synchronize_session=False)
    )
    async with sessions.begin() as session:
        positions = (await session.scalars(requeue)).all()
    return sorted(positions)

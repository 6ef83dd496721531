"""Read-side queries; the routers call these and never write SQL themselves."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app import models
from app.providers.model import Provider


async def find_job(session: AsyncSession, provider: Provider, job_id: str) -> models.Job | None:
    statement = (
        select(models.Job)
        .where(models.Job.provider == provider, models.Job.job_id == job_id)
        .options(selectinload(models.Job.outputs))
    )
    job: models.Job | None = await session.scalar(statement)
    return job

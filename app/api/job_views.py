"""A job as the API answers it, from its row, its files and its watch: shared by the /v1/jobs
routers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from app import models
from app.api.schemas.jobs import JobOut
from app.config import Settings
from app.errors import NotFound
from app.providers.model import Provider
from app.queries import jobs as job_queries
from app.queries.files import files_of
from app.queries.watches import watches_of

J = TypeVar("J", bound=JobOut)


async def shown(
    session: AsyncSession, jobs: Sequence[models.Job], settings: Settings, out: type[J]
) -> list[J]:
    """The jobs as `out`, their files and watches read in one query each."""
    keys = [job.id for job in jobs]
    files = await files_of(session, keys)
    watches = await watches_of(session, keys)
    polled = settings.polled_providers
    return [
        out.of(job, files[job.id], watches.get(job.id), polled=polled, root_path=settings.root_path)
        for job in jobs
    ]


async def known_job(session: AsyncSession, provider: Provider, job_id: str) -> models.Job:
    job = await job_queries.find_job(session, provider, job_id)
    if job is None:
        raise NotFound(f"no {provider} job {job_id!r}")
    return job

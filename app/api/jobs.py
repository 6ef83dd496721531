"""GET /v1/jobs/{provider}/{job_id}: the normalized job, for holders of an API token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from app import queries
from app.api.deps import SessionDep, require_api_token
from app.api.schemas import ErrorOut, JobOut
from app.errors import NotFound
from app.providers.model import Provider

router = APIRouter(
    prefix="/v1",
    tags=["jobs"],
    dependencies=[Depends(require_api_token)],
    responses={401: {"model": ErrorOut}},
)


JobIdPath = Annotated[str, Path(max_length=255, pattern=r"^[^\x00]+$")]


@router.get("/jobs/{provider}/{job_id}", responses={404: {"model": ErrorOut}})
async def get_job(provider: Provider, job_id: JobIdPath, session: SessionDep) -> JobOut:
    job = await queries.find_job(session, provider, job_id)
    if job is None:
        raise NotFound(f"no {provider} job {job_id!r}")
    return JobOut.of(job)

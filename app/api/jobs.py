"""GET /v1/jobs/{provider}/{job_id}: the normalized job, for holders of an API token."""

from __future__ import annotations

from fastapi import APIRouter, Depends

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


@router.get("/jobs/{provider}/{job_id}", responses={404: {"model": ErrorOut}})
async def get_job(provider: Provider, job_id: str, session: SessionDep) -> JobOut:
    job = await queries.find_job(session, provider, job_id)
    if job is None:
        raise NotFound(f"no {provider} job {job_id!r}")
    return JobOut.of(job)

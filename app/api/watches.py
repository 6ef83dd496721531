"""/v1/jobs/{provider}/{job_id}/expect and .../poll: jobs stemhook should not lose when their
callback never comes (app/polling/)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Response

from app.api.deps import SessionsDep, SettingsDep, require_api_token
from app.api.job_views import known_job, shown
from app.api.jobs import JobIdPath, ProviderPath
from app.api.schemas.common import ErrorOut
from app.api.schemas.expect import ExpectIn
from app.api.schemas.jobs import JobDetailOut
from app.errors import Conflict
from app.polling.expect import expect_job, poll_now

router = APIRouter(
    prefix="/v1/jobs",
    tags=["jobs"],
    dependencies=[Depends(require_api_token)],
    responses={401: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)


@router.put(
    "/{provider}/{job_id}/expect",
    summary="Register a job just submitted, so that it is polled if its callback never comes",
    description="The job exists at once, `submitted`, with no delivery (`deliveries` 0), and"
    " can be waited on with `?wait=`. Unless a final state arrives first, its provider is asked"
    " about it `poll_after_s` after registering, then with backoff, until it is final or"
    " `give_up_after_s` has passed. Registering a job stemhook already knows (registered, or"
    " heard of through a callback) changes nothing and answers 200.",
    responses={
        201: {"model": JobDetailOut, "description": "The job is registered."},
        200: {"description": "The job was known already: nothing changed."},
        400: {"model": ErrorOut, "description": "The body is not JSON."},
    },
)
async def expect(
    provider: ProviderPath,
    job_id: JobIdPath,
    response: Response,
    sessions: SessionsDep,
    settings: SettingsDep,
    body: Annotated[ExpectIn | None, Body()] = None,
) -> JobDetailOut:
    registration = (body or ExpectIn()).registration()
    now = datetime.now(UTC)
    if await expect_job(
        sessions, provider, job_id, registration, now=now, policy=settings.watch_policy
    ):
        response.status_code = 201
    async with sessions() as session:
        [detail] = await shown(
            session, [await known_job(session, provider, job_id)], settings, JobDetailOut
        )
    return detail


@router.post(
    "/{provider}/{job_id}/poll",
    summary="Ask the job's provider about it now",
    description="The job's watch is due at once (one given up on too: it is polled once more)."
    " Answers 202 with the job as it is; its `watch` shows the poll once it is made. 409 when"
    " the job is final, or its provider has no credentials configured to poll it.",
    status_code=202,
    responses={404: {"model": ErrorOut}, 409: {"model": ErrorOut}},
)
async def poll(
    provider: ProviderPath, job_id: JobIdPath, sessions: SessionsDep, settings: SettingsDep
) -> JobDetailOut:
    if provider not in settings.polled_providers:
        raise Conflict(f"no credentials are configured to poll {provider} (see README: Lost jobs)")
    async with sessions() as session:
        job = await known_job(session, provider, job_id)
    if not await poll_now(sessions, job.id, now=datetime.now(UTC)):
        raise Conflict(f"{provider} job {job_id!r} is {job.state}: there is nothing to poll")
    async with sessions() as session:
        [detail] = await shown(session, [job], settings, JobDetailOut)
    return detail

"""/v1/jobs: find, page through, inspect and wait for jobs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from app import models
from app.api.deps import SessionDep, SessionsDep, SettingsDep, WatchDep, require_api_token
from app.api.disconnect import client_gone
from app.api.job_views import known_job, shown
from app.api.pagination import (
    decode_before_id,
    decode_job_position,
    encode_before_id,
    encode_job_position,
)
from app.api.params import JobParams, PageParams
from app.api.schemas import examples
from app.api.schemas.common import ErrorOut, Page
from app.api.schemas.deliveries import DeliveryOut, JobDeliveryOut
from app.api.schemas.jobs import EventOut, EventsOut, JobDetailOut, JobOut, RawOut
from app.errors import NotFound
from app.mirror.retry import retry_failed
from app.providers.model import Provider
from app.queries import deliveries as delivery_queries
from app.queries import jobs as job_queries
from app.watch import final_or_timeout

router = APIRouter(
    prefix="/v1/jobs",
    tags=["jobs"],
    dependencies=[Depends(require_api_token)],
    responses={401: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)
# "Try it out" starts from the job the answer examples show.
ProviderPath = Annotated[
    Provider, Path(openapi_examples={"voice_separate": {"value": examples.JOB_KEY["provider"]}})
]
JobIdPath = Annotated[
    str,
    Path(
        max_length=255,
        pattern=r"^[^\x00]+$",
        openapi_examples={"voice_separate": {"value": examples.JOB_KEY["job_id"]}},
    ),
]
JOB_DELIVERIES = "job-deliveries"


@router.get("", summary="List jobs, newest first by last received delivery")
async def list_jobs(
    params: Annotated[JobParams, Query()], session: SessionDep, settings: SettingsDep
) -> Page[JobOut]:
    page = await job_queries.list_jobs(
        session,
        params.filter(polled=settings.polled_providers),
        limit=params.limit,
        after=decode_job_position(params.cursor),
        began_since=datetime.now(UTC) - settings.cursor_max_age,
    )
    return Page[JobOut](
        items=await shown(session, page.jobs, settings, JobOut),
        next_cursor=encode_job_position(page.next),
    )


@router.get(
    "/{provider}/{job_id}",
    summary="One job; optionally its latest raw payload, or wait until it is final",
    responses={
        404: {"model": ErrorOut},
        429: {"model": ErrorOut, "description": "STEMHOOK_MAX_WAITERS requests already wait."},
    },
)
async def get_job(
    request: Request,
    provider: ProviderPath,
    job_id: JobIdPath,
    sessions: SessionsDep,
    watch: WatchDep,
    settings: SettingsDep,
    include: Annotated[
        Literal["raw"] | None, Query(description="raw: add the latest delivery's payload")
    ] = None,
    wait: Annotated[
        float,
        Query(
            ge=0,
            le=60,
            description="seconds to wait for a final state (or for the job to arrive at all)",
        ),
    ] = 0,
) -> JobDetailOut:
    async with client_gone(request) as gone:
        job = await final_or_timeout(
            sessions, watch, provider, job_id, wait_s=min(wait, settings.max_wait_s), gone=gone
        )
    if job is None:
        raise NotFound(f"no {provider} job {job_id!r}")
    async with sessions() as session:
        [detail] = await shown(session, [job], settings, JobDetailOut)
        delivery = (
            await session.get(models.Delivery, job.last_delivery_id)
            if include == "raw" and job.last_delivery_id is not None
            else None
        )
    if delivery is not None:
        detail = detail.model_copy(update={"raw": RawOut.of(delivery)})
    return detail


@router.post(
    "/{provider}/{job_id}/files/retry",
    summary="Fetch the job's failed output files again",
    description="Every output file of the job in status `failed` is queued again: `pending`,"
    " due now, its attempts back to 0 and its error cleared. Stored, skipped and pending files"
    " are left as they are, so retrying again changes nothing. Answers the job as GET does,"
    " 202 when files were queued, 200 when none had failed.",
    responses={
        200: {"description": "No file had failed: nothing changed."},
        202: {"model": JobDetailOut, "description": "Failed files were queued again."},
        404: {"model": ErrorOut},
    },
)
async def retry_files(
    provider: ProviderPath,
    job_id: JobIdPath,
    response: Response,
    sessions: SessionsDep,
    settings: SettingsDep,
) -> JobDetailOut:
    async with sessions() as session:
        job = await known_job(session, provider, job_id)
    if await retry_failed(sessions, job.id, now=datetime.now(UTC)):
        response.status_code = 202
    async with sessions() as session:
        [detail] = await shown(session, [job], settings, JobDetailOut)
    return detail


@router.get(
    "/{provider}/{job_id}/events",
    summary="The job's state history, oldest first",
    responses={404: {"model": ErrorOut}},
)
async def job_events(provider: ProviderPath, job_id: JobIdPath, session: SessionDep) -> EventsOut:
    job = await known_job(session, provider, job_id)
    events = await job_queries.job_events(session, job.id)
    return EventsOut(items=[EventOut.of(event) for event in events])


@router.get(
    "/{provider}/{job_id}/deliveries",
    summary="Every delivery that touched the job, newest first",
    responses={404: {"model": ErrorOut}},
)
async def job_deliveries(
    provider: ProviderPath,
    job_id: JobIdPath,
    params: Annotated[PageParams, Query()],
    session: SessionDep,
) -> Page[JobDeliveryOut]:
    job = await known_job(session, provider, job_id)
    page = await delivery_queries.job_deliveries(
        session,
        job.id,
        limit=params.limit,
        before_id=decode_before_id(JOB_DELIVERIES, params.cursor),
    )
    return Page[JobDeliveryOut](
        items=[
            JobDeliveryOut(**DeliveryOut.of(delivery).model_dump(), duplicate=duplicate)
            for delivery, duplicate in page.items
        ],
        next_cursor=encode_before_id(JOB_DELIVERIES, page.next_before_id),
    )

"""Console pages of jobs: the filtered list, finding one by its id, one job whole, and its
stored files' bytes (the API's own answer, behind the session instead of the bearer token)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import JSONResponse, Response

from app import models
from app.api.deps import FilesDep, SessionDep, SessionsDep, SettingsDep, WatchDep
from app.api.disconnect import client_gone
from app.api.files import stored_file_answer
from app.api.job_views import known_job, shown
from app.api.jobs import JobIdPath, ProviderPath
from app.api.pagination import decode_job_position, encode_job_position
from app.api.params import JobParams
from app.api.schemas.jobs import JobDetailOut, JobOut
from app.console.bodies import shown_off_the_loop
from app.console.guard import SignedIn
from app.console.listings import in_use, page_query, read_params
from app.console.pages import ConsoleRoute, Problem, redirect, render, segment
from app.console.timeline import timeline
from app.errors import InvalidRequest
from app.mirror.sources import FileStatus
from app.polling.watches import WatchStatus
from app.providers.model import Provider, State
from app.queries import deliveries as delivery_queries
from app.queries import jobs as job_queries
from app.watch import final_or_timeout

router = APIRouter(prefix="/ui/jobs", route_class=ConsoleRoute, include_in_schema=False)
# The deliveries a job page lists; a job with more shows the newest.
TIMELINE_DELIVERIES = 100
# How long the job page's script waits for a job to finish before it asks again: below the
# proxy's read timeout (deploy/nginx.conf).
WAIT_S = 25


@router.get("")
async def job_list(
    request: Request, _signed_in: SignedIn, session: SessionDep, settings: SettingsDep
) -> Response:
    params = read_params(request.query_params, JobParams)
    jobs: list[JobOut] = []
    next_query = None
    error = params if isinstance(params, str) else None
    if isinstance(params, JobParams):
        try:
            page = await job_queries.list_jobs(
                session,
                params.filter(polled=settings.polled_providers),
                limit=params.limit,
                after=decode_job_position(params.cursor),
                began_since=datetime.now(UTC) - settings.cursor_max_age,
            )
        except InvalidRequest as invalid:
            error = invalid.message
        else:
            jobs = await shown(session, page.jobs, settings, JobOut)
            next_query = page_query(request.query_params, encode_job_position(page.next))
    return render(
        request,
        "jobs.html",
        status=200 if error is None else 422,
        jobs=jobs,
        error=error,
        asked=request.query_params,
        filtered=in_use(request.query_params),
        next_query=next_query,
        providers=[provider.value for provider in Provider],
        states=[state.value for state in State],
        file_statuses=[status.value for status in FileStatus],
        watch_statuses=[status.value for status in WatchStatus],
    )


@router.get("/find")
async def find(
    request: Request,
    _signed_in: SignedIn,
    session: SessionDep,
    job_id: Annotated[str, Query(max_length=255, pattern=r"^[^\x00]*$")] = "",
    # A form's "any provider" is sent empty.
    provider: Annotated[Provider | Literal[""], Query()] = "",
) -> Response:
    """Straight to the job with this id; with no provider named, any provider's."""
    job_id = job_id.strip()
    found = [
        job
        for candidate in ([provider] if provider else list(Provider))
        if job_id and (job := await job_queries.find_job(session, candidate, job_id)) is not None
    ]
    if len(found) == 1:
        return redirect(request, f"/jobs/{found[0].provider}/{segment(job_id)}")
    if not found:
        raise Problem(404, f"No job has the id {job_id!r}." if job_id else "Give a job id.")
    return render(request, "found.html", job_id=job_id, found=found)


@router.get("/{provider}/{job_id}")
async def job_page(
    request: Request,
    _signed_in: SignedIn,
    provider: ProviderPath,
    job_id: JobIdPath,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    job = await known_job(session, provider, job_id)
    [detail] = await shown(session, [job], settings, JobDetailOut)
    latest = (
        None
        if job.last_delivery_id is None
        else await session.get(models.Delivery, job.last_delivery_id)
    )
    deliveries = await delivery_queries.job_deliveries(
        session, job.id, limit=TIMELINE_DELIVERIES, before_id=None
    )
    return render(
        request,
        "job.html",
        job=detail,
        job_path=f"/jobs/{provider.value}/{segment(job_id)}",
        latest=latest,
        latest_body=await shown_off_the_loop(None if latest is None else latest.body),
        moments=timeline(await job_queries.job_events(session, job.id), deliveries.items),
        more_deliveries=deliveries.next_before_id is not None,
    )


@router.get("/{provider}/{job_id}/wait")
async def wait_for_job(
    request: Request,
    _signed_in: SignedIn,
    provider: ProviderPath,
    job_id: JobIdPath,
    sessions: SessionsDep,
    watch: WatchDep,
    settings: SettingsDep,
) -> Response:
    """The job's state once it is final, or as it is after a while: what the job page's script
    waits on (the long poll of GET /v1/jobs/...?wait=, places counted alike)."""
    async with sessions() as session:
        await known_job(session, provider, job_id)  # an unknown job is not waited for
    async with client_gone(request) as gone:
        job = await final_or_timeout(
            sessions, watch, provider, job_id, wait_s=min(WAIT_S, settings.max_wait_s), gone=gone
        )
    if job is None:
        raise Problem(404, f"No {provider.value} job has the id {job_id!r}.")
    return JSONResponse({"state": job.state, "last_received_at": job.last_received_at.isoformat()})


@router.get("/{provider}/{job_id}/files/{position}")
async def stored_file(
    request: Request,
    _signed_in: SignedIn,
    provider: ProviderPath,
    job_id: JobIdPath,
    position: Annotated[int, Path(ge=0, le=10_000)],
    session: SessionDep,
    files: FilesDep,
) -> Response:
    return await stored_file_answer(
        request, provider=provider, job_id=job_id, position=position, session=session, files=files
    )

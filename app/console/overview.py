"""The console's first page: the last 24 hours' jobs by provider and state, their files,
deliveries by outcome hour by hour, each count a link to the filtered list."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request
from starlette.responses import Response

from app.api.deps import NowDep, SessionDep
from app.console.chart import hourly_chart
from app.console.guard import SignedIn
from app.console.pages import ConsoleRoute, render
from app.ingest.intake import Outcome
from app.mirror.sources import FileStatus
from app.providers.model import Provider, State
from app.queries.stats import hourly_stats

router = APIRouter(prefix="/ui", route_class=ConsoleRoute, include_in_schema=False)
HOURS = 24


@router.get("/")
async def overview(
    request: Request, _session: SignedIn, session: SessionDep, now: NowDep
) -> Response:
    # Whole hours, so that each bar is one hour of the clock.
    until = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    since = until - timedelta(hours=HOURS)
    counted, hourly = await hourly_stats(session, since=since, hours=HOURS)
    jobs = {(provider, state): count for provider, state, count in counted.jobs}
    deliveries = dict(counted.deliveries)
    return render(
        request,
        "overview.html",
        since=since,
        until=until,
        since_text=since.strftime("%Y-%m-%dT%H:%M"),
        providers=[provider.value for provider in Provider],
        states=[state.value for state in State],
        jobs=jobs,
        files={status.value: counted.files.by_status[status] for status in FileStatus},
        deliveries=deliveries,
        jobs_failed=sum(count for (_, state), count in jobs.items() if state == State.FAILED),
        rejected=deliveries.get(Outcome.REJECTED, 0) + deliveries.get(Outcome.ORPHANED, 0),
        outcomes=[outcome.value for outcome in Outcome],
        chart=hourly_chart(hourly, since=since, hours=HOURS, outcomes=list(Outcome)),
    )

"""/v1/stats: jobs by provider and state, their files by status, deliveries by outcome, over a
window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from app.api.deps import SessionDep, require_api_token
from app.api.params import WindowParams
from app.api.schemas.common import ErrorOut
from app.api.schemas.stats import StatsOut
from app.queries.stats import window_stats

router = APIRouter(
    prefix="/v1/stats",
    tags=["stats"],
    dependencies=[Depends(require_api_token)],
    responses={401: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)
DEFAULT_WINDOW = timedelta(hours=24)
EARLIEST = datetime.min.replace(tzinfo=UTC)


@router.get("", summary="Counts over a window (default: the last 24 hours)")
async def stats(params: Annotated[WindowParams, Query()], session: SessionDep) -> StatsOut:
    until = params.until or datetime.now(UTC)
    # Cut at year 1: `until - DEFAULT_WINDOW` would overflow for an `until` on its first day.
    since = params.since or until - min(DEFAULT_WINDOW, until - EARLIEST)
    counted = await window_stats(session, since=since, until=until)
    return StatsOut.of(counted, since=since, until=until)

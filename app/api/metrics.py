"""GET /metrics: Prometheus exposition, behind STEMHOOK_METRICS_TOKEN when one is set.

The counts of output files and of polls are read from the database at each scrape; when it does
not answer they are left out (their series go absent) and the rest is answered still.
"""

from __future__ import annotations

import hmac
import logging

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy.exc import DBAPIError

from app.api.deps import SessionDep, app_metrics, app_settings
from app.errors import Unauthorized
from app.metrics import file_gauges, poll_gauges
from app.queries.files import file_counts
from app.queries.polls import poll_counts

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, session: SessionDep) -> Response:
    token = (await app_settings(request)).metrics_token
    if token is not None:
        given = request.headers.get("authorization", "").removeprefix("Bearer ").encode()
        if not hmac.compare_digest(given, token.get_secret_value().encode()):
            raise Unauthorized("/metrics needs 'Authorization: Bearer <STEMHOOK_METRICS_TOKEN>'")
    body = (await app_metrics(request)).exposition()
    try:
        files, polls = await file_counts(session), await poll_counts(session)
        body += file_gauges(files) + poll_gauges(polls)
    except DBAPIError as exc:
        log.warning("/metrics: file and poll counts left out, the database did not answer: %s", exc)
    return Response(body, media_type=CONTENT_TYPE_LATEST)

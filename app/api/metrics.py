"""GET /metrics: Prometheus exposition, behind STEMHOOK_METRICS_TOKEN when one is set."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from app.api.deps import app_metrics, app_settings
from app.errors import Unauthorized

router = APIRouter(tags=["health"])


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    token = (await app_settings(request)).metrics_token
    if token is not None:
        given = request.headers.get("authorization", "").removeprefix("Bearer ").encode()
        if not hmac.compare_digest(given, token.get_secret_value().encode()):
            raise Unauthorized("/metrics needs 'Authorization: Bearer <STEMHOOK_METRICS_TOKEN>'")
    body = (await app_metrics(request)).exposition()
    return Response(body, media_type=CONTENT_TYPE_LATEST)

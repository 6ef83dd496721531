"""POST /callbacks[/{provider}]: authenticate, read, parse, store, answer.

Only what is committed is acknowledged. A body that cannot be parsed is stored as a rejected
delivery before the 400 goes out, so it can be inspected and replayed once the parser learns it.
Unauthenticated and oversized requests are refused before anything is stored.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.routing import APIRoute

from app.api.callback_docs import any_family_body, family_body
from app.api.deps import app_metrics, app_settings, app_watch, app_writer
from app.api.schemas.common import ErrorOut
from app.api.schemas.receipts import ReceiptOut
from app.config import Settings
from app.errors import (
    BadPayload,
    PayloadTooLarge,
    RequestTimeout,
    StorageUnavailable,
    Unauthorized,
    UnstorablePayload,
)
from app.ingest.admission import BadSignature
from app.ingest.intake import Arrival, Outcome, Receipt, Submission
from app.providers.model import Provider
from app.replay import AUTO_ENDPOINT

Endpoint = Callable[[Request], Awaitable[Response]]
_NOT_KEPT_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization", "x-api-key"})
_MAX_KEPT_HEADERS = 64
_MAX_HEADER_VALUE = 1024
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut, "description": description}
    for code, description in {
        400: "Malformed, unrecognized or unstorable payload; kept as a rejected or orphaned"
        " delivery.",
        401: "Wrong or missing ?token= (or Suno signature).",
        408: "The body did not arrive in time.",
        413: "Body above STEMHOOK_MAX_BODY_BYTES.",
        503: "The database could not take the write in time; retry.",
    }.items()
}


def add_routes(app: FastAPI) -> list[APIRoute]:
    """Serve the callback endpoints, the hot path, as plain Starlette routes of the application
    itself; returns the same endpoints declared as APIRoutes, for FastAPI to document.

    A FastAPI route matches an included router twice and solves dependencies, runs an exit
    stack and builds a response model for every request: half of the per-request cost of an
    endpoint that reads and decodes a body (measured: 36 against 18 us), which these endpoints
    need none of. What a callback is answered is still declared, and checked by the OpenAPI
    tests, through the APIRoutes.
    """
    summary = "Receive a callback, family detected"
    declared = [_declare("/callbacks", receive_any, summary, any_family_body())]
    # One route per family rather than /callbacks/{provider}: each documents its own payloads.
    for provider in Provider:
        summary = f"Receive a {provider} callback"
        body = family_body(provider)
        declared.append(_declare(f"/callbacks/{provider}", _receiver(provider), summary, body))
    for route in declared:
        app.add_route(route.path, route.endpoint, methods=["POST"], include_in_schema=False)
    return declared


def _declare(
    path: str,
    endpoint: Callable[[Request], Awaitable[Response]],
    summary: str,
    body: dict[str, Any],
) -> APIRoute:
    return APIRoute(
        path,
        endpoint,
        methods=["POST"],
        response_model=ReceiptOut,
        responses=_ERRORS,
        summary=summary,
        tags=["callbacks"],
        openapi_extra=body,
    )


async def receive_any(request: Request) -> Response:
    return await receive(request, expected=None)


def _receiver(provider: Provider) -> Endpoint:
    async def receive_from(request: Request) -> Response:
        return await receive(request, expected=provider)

    return receive_from


async def receive(request: Request, *, expected: Provider | None) -> Response:
    settings = await app_settings(request)
    authenticate_sender(request, settings)
    arrival = await read_arrival(request, settings, endpoint=expected or AUTO_ENDPOINT)
    receipt = await store(request, Submission(arrival=arrival, expected=expected))
    return answer(receipt)


def authenticate_sender(request: Request, settings: Settings) -> None:
    if settings.callback_token is None:
        return
    given = request.query_params.get("token", "").encode()
    if not hmac.compare_digest(given, settings.callback_token.get_secret_value().encode()):
        raise Unauthorized("the callback URL's ?token= is missing or wrong")


async def read_arrival(request: Request, settings: Settings, *, endpoint: str) -> Arrival:
    received_at = datetime.now(UTC)
    body = await read_body(request, settings)
    return Arrival(
        received_at=received_at,
        endpoint=endpoint,
        content_type=request.headers.get("content-type"),
        client_addr=request.client.host if request.client else None,
        headers=kept_headers(request),
        body=body,
    )


async def read_body(request: Request, settings: Settings) -> bytes:
    """The body, refused as soon as it is known to be too big or too slow to arrive."""
    limit = settings.max_body_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body of {declared} bytes exceeds the limit of {limit}")
    body = bytearray()
    try:
        async with asyncio.timeout(settings.body_timeout_s):
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    raise PayloadTooLarge(f"body exceeds the limit of {limit} bytes")
    except TimeoutError:
        raise RequestTimeout(
            f"the body did not arrive within {settings.body_timeout_s:g} s"
        ) from None
    return bytes(body)


def kept_headers(request: Request) -> dict[str, str]:
    """The request's headers minus credentials; a repeated header's values joined by ", "."""
    kept: dict[str, str] = {}
    for name, value in request.headers.items():
        if name in _NOT_KEPT_HEADERS:
            continue
        if name not in kept and len(kept) == _MAX_KEPT_HEADERS:
            continue
        joined = f"{kept[name]}, {value}" if name in kept else value
        kept[name] = joined[:_MAX_HEADER_VALUE]
    return kept


async def store(request: Request, submission: Submission) -> Receipt:
    """Commit through the writer, wake long polls, and account for it (metrics, log line)."""
    metrics = await app_metrics(request)
    metrics.body_bytes.observe(len(submission.arrival.body))
    try:
        receipt = await (await app_writer(request)).write(submission)
    except StorageUnavailable:
        metrics.database_errors.labels("unavailable").inc()
        raise
    except BadSignature as exc:
        raise Unauthorized(str(exc)) from None
    finally:
        elapsed = datetime.now(UTC) - submission.arrival.received_at
        metrics.ingest_seconds.observe(elapsed.total_seconds())
    (await app_watch(request)).notify()
    metrics.stored(receipt)
    request.state.log_fields.update(
        provider=receipt.provider,
        delivery_id=receipt.delivery_id,
        outcome=receipt.outcome,
        jobs=[f"{job.job_id}:{job.state}" for job in receipt.jobs],
    )
    return receipt


def answer(receipt: Receipt) -> Response:
    """Committed: 200, or 400 for a body kept as rejected or orphaned (it will not improve)."""
    if receipt.outcome is Outcome.REJECTED:
        raise BadPayload(receipt.error or "", delivery_id=receipt.delivery_id)
    if receipt.outcome is Outcome.ORPHANED:
        raise UnstorablePayload(receipt.error or "", delivery_id=receipt.delivery_id)
    return Response(ReceiptOut.of(receipt).model_dump_json(), media_type="application/json")

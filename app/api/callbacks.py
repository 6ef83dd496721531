"""POST /callbacks[/{provider}]: authenticate, read, parse, store, answer.

Only what is committed is acknowledged. A body that cannot be parsed is stored as a rejected
delivery before the 400 goes out, so it can be inspected and replayed once the parser learns it.
Unauthenticated and oversized requests are refused before anything is stored, except a Suno
delivery whose valid signature was first used for another body: that is a forgery made with a
leaked signature, kept (as refused, answered 401) as evidence of it.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.callback_docs import any_family_body, family_body
from app.api.deps import app_metrics, app_settings, app_slow_bodies, app_watch, app_writer
from app.api.errors import answer_error
from app.api.schemas.common import ErrorOut
from app.api.schemas.receipts import ReceiptOut, receipt_json
from app.config import Settings
from app.errors import (
    BadPayload,
    Overloaded,
    PayloadTooLarge,
    RefusedDelivery,
    StorageUnavailable,
    Unauthorized,
    UnstorablePayload,
)
from app.headers import kept as is_kept
from app.ingest.admission import BadSignature
from app.ingest.intake import Arrival, Outcome, Receipt, Submission
from app.logs import FIELDS_KEY
from app.providers.model import Provider
from app.providers.registry import AUTO_ENDPOINT

_MAX_KEPT_HEADERS = 64
_MAX_HEADER_VALUE = 1024
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut, "description": description}
    for code, description in {
        400: "Malformed, unrecognized or unstorable payload, or a final state its provider"
        " contradicts (STEMHOOK_CONFIRM_BY_POLL); kept as a rejected or orphaned delivery.",
        401: "Wrong or missing ?token= or Suno signature; or a Suno signature already used for"
        " another body (kept as a refused delivery, with its id).",
        408: "The body did not arrive in time.",
        413: "Body above STEMHOOK_MAX_BODY_BYTES.",
        503: "The database could not take the write in time, or too many writes wait for it;"
        " retry (Retry-After).",
    }.items()
}


class CallbackEndpoints:
    """Serves /callbacks[/{provider}], the hot path, in front of FastAPI's whole middleware
    stack, just inside the request log (app/main.py): the exception middleware, the exit stack
    and the router cost ~15 us of a callback's ~100 us in the web process (measured in process
    with the writer stubbed), and these endpoints need none of them. FastAPI's route machinery
    (dependencies, a response model per request) would have cost as much again.

    Errors are answered as everywhere else, through the same handlers: service and HTTP errors,
    and anything unexpected as a 500 (logged). What these endpoints accept and answer is
    declared to FastAPI for the OpenAPI document (`declared_routes`).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (path := _route_path(scope)) in _ENDPOINTS:
            await self._serve(scope, receive, send, expected=_ENDPOINTS[path])
        else:
            await self.app(scope, receive, send)

    @staticmethod
    async def _serve(
        scope: Scope, receive: Receive, send: Send, *, expected: Provider | None
    ) -> None:
        request = Request(scope, receive)
        response: Response
        try:
            if scope["method"] != "POST":
                raise HTTPException(405, headers={"Allow": "POST"})
            response = await receive_callback(request, expected=expected)
        except Exception as exc:
            response = await answer_error(request, exc)
        await response(scope, receive, send)


_ENDPOINTS: dict[str, Provider | None] = {
    "/callbacks": None,
    **{f"/callbacks/{provider}": provider for provider in Provider},
}


def _route_path(scope: Scope) -> str:
    """The path below the root path the server was given, as Starlette's router matches it
    (its own helper for this, starlette._utils.get_route_path, is private)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path.removeprefix(root) if root and path.startswith(f"{root}/") else path


def declared_routes() -> list[APIRoute]:
    """The callback endpoints as APIRoutes, for FastAPI to document (they are served by
    CallbackEndpoints)."""
    summary = "Receive a callback, family detected"
    declared = [_declare("/callbacks", None, summary, any_family_body())]
    # One route per family rather than /callbacks/{provider}: each documents its own payloads.
    for provider in Provider:
        summary = f"Receive a {provider} callback"
        declared.append(
            _declare(f"/callbacks/{provider}", provider, summary, family_body(provider))
        )
    return declared


def _declare(path: str, expected: Provider | None, summary: str, body: dict[str, Any]) -> APIRoute:
    async def endpoint(request: Request) -> Response:
        return await receive_callback(request, expected=expected)

    return APIRoute(
        path,
        endpoint,
        # The operation ids these endpoints had when they were routes of their own.
        name="receive_any" if expected is None else "receive_from",
        methods=["POST"],
        response_model=ReceiptOut,
        responses=_ERRORS,
        summary=summary,
        tags=["callbacks"],
        openapi_extra=body,
    )


async def receive_callback(request: Request, *, expected: Provider | None) -> Response:
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
    headers = read_headers(request.scope["headers"])
    body = await read_body(request, settings, declared=headers.content_length)
    client = request.scope.get("client")
    return Arrival(
        received_at=received_at,
        endpoint=endpoint,
        content_type=headers.content_type,
        client_addr=client[0] if client else None,
        headers=headers.kept,
        body=body,
    )


@dataclass(slots=True)
class RequestHeaders:
    kept: dict[str, str]  # those app/api/headers.py keeps; a repeated one's values joined by ", "
    content_type: str | None  # the first of each, as Starlette's Headers.get() gives it
    content_length: str | None


def read_headers(raw: Iterable[tuple[bytes, bytes]]) -> RequestHeaders:
    """The ASGI scope's headers (names lower-case), read in one pass: Starlette's Headers
    decodes them all again on each look-up, ~3 us a callback for these three."""
    kept: dict[str, str] = {}
    content_type: str | None = None
    content_length: str | None = None
    for raw_name, raw_value in raw:
        name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
        if name == "content-type" and content_type is None:
            content_type = value
        elif name == "content-length" and content_length is None:
            content_length = value
        if not is_kept(name):
            continue
        if name in kept:
            value = f"{kept[name]}, {value}"
        elif len(kept) == _MAX_KEPT_HEADERS:
            continue
        kept[name] = value[:_MAX_HEADER_VALUE]
    return RequestHeaders(kept, content_type, content_length)


async def read_body(request: Request, settings: Settings, *, declared: str | None) -> bytes:
    """The body, refused as soon as it is known to be too big or too slow to arrive.

    Read from the ASGI messages directly: a callback's body nearly always comes in one, and
    Request.stream()'s generator with a copy into a buffer cost ~2 us a callback."""
    limit = settings.max_body_bytes
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body of {declared} bytes exceeds the limit of {limit}")
    receive = request.receive
    chunks: list[bytes] = []
    size = 0
    with (await app_slow_bodies(request)).deadline():
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"body exceeds the limit of {limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def store(request: Request, submission: Submission) -> Receipt:
    """Commit through the writer, wake long polls, and account for it (metrics, log line)."""
    metrics = await app_metrics(request)
    metrics.body_read(len(submission.arrival.body))
    try:
        receipt = await (await app_writer(request)).write(submission)
    except Overloaded:
        metrics.overloaded()
        raise
    except StorageUnavailable:
        metrics.unavailable()
        raise
    except BadSignature as exc:
        raise Unauthorized(str(exc)) from None
    finally:
        elapsed = datetime.now(UTC) - submission.arrival.received_at
        metrics.answered(elapsed.total_seconds())
    (await app_watch(request)).notify(receipt.jobs)
    metrics.stored(receipt)
    # The request log's fields, read from the scope: request.state wraps it in a new object.
    fields = request.scope["state"][FIELDS_KEY]
    fields["provider"] = receipt.provider
    fields["delivery_id"] = receipt.delivery_id
    fields["outcome"] = receipt.outcome
    fields["jobs"] = [f"{job.job_id}:{job.state}" for job in receipt.jobs]
    return receipt


def answer(receipt: Receipt) -> Response:
    """Committed: 200 (an unconfirmed one too: stored, its provider asked), 400 for a body kept
    as rejected or orphaned (it will not improve), or 401 for one kept as refused (its signature
    vouches for another body)."""
    if receipt.outcome is Outcome.REFUSED:
        raise RefusedDelivery(receipt.error or "", delivery_id=receipt.delivery_id)
    if receipt.outcome is Outcome.REJECTED:
        raise BadPayload(receipt.error or "", delivery_id=receipt.delivery_id)
    if receipt.outcome is Outcome.ORPHANED:
        raise UnstorablePayload(receipt.error or "", delivery_id=receipt.delivery_id)
    return Response(receipt_json(receipt), media_type="application/json")

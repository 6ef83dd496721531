"""Every error leaves as {"error": {"code", "message"}} with its status (see app/errors.py).

A client that hangs up before its body is in is not an error of the service: one INFO line, and
the request log shows 499 (nginx's "client closed request"), an answer nobody receives.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from app.api.schemas.common import ErrorBody, ErrorOut
from app.db import is_unavailable
from app.errors import StemhookError, StorageUnavailable
from app.ingest.committer import UNAVAILABLE

log = logging.getLogger(__name__)
CLIENT_CLOSED_REQUEST = 499


def _answer(status: int, body: ErrorBody, headers: Mapping[str, str] | None = None) -> JSONResponse:
    content = ErrorOut(error=body).model_dump(exclude_none=True)
    return JSONResponse(content, status_code=status, headers=headers)


async def _service_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StemhookError)
    body = ErrorBody(code=exc.code, message=exc.message, delivery_id=exc.delivery_id)
    return _answer(exc.status_code, body, exc.headers())


async def _invalid_request(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [
        f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors()
    ]
    return _answer(422, ErrorBody(code="invalid_request", message="; ".join(problems)))


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = "not_found" if exc.status_code == 404 else f"http_{exc.status_code}"
    return _answer(exc.status_code, ErrorBody(code=code, message=str(exc.detail)), exc.headers)


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    if is_unavailable(exc):
        log.warning("database unavailable: %s", exc)
        return await _service_error(request, StorageUnavailable(UNAVAILABLE))
    return await _unexpected(request, exc)


async def _client_disconnected(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ClientDisconnect)
    log.info("the client disconnected before sending its whole body")
    body = ErrorBody(code="client_disconnected", message="the client disconnected")
    return _answer(CLIENT_CLOSED_REQUEST, body)


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error", exc_info=exc)
    return _answer(500, ErrorBody(code="internal", message="internal error"))


async def answer_error(request: Request, exc: Exception) -> JSONResponse:
    """The answer for an error raised outside FastAPI's exception middleware: a service or HTTP
    error as everywhere else, anything else a 500 (logged)."""
    if isinstance(exc, StemhookError):
        return await _service_error(request, exc)
    if isinstance(exc, HTTPException):
        return await _http_error(request, exc)
    if isinstance(exc, ClientDisconnect):
        return await _client_disconnected(request, exc)
    return await _unexpected(request, exc)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(StemhookError, _service_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(HTTPException, _http_error)
    # Registered by class so that they answer without Starlette re-raising (Exception is not).
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(ClientDisconnect, _client_disconnected)
    app.add_exception_handler(Exception, _unexpected)

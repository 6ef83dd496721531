"""Errors the service answers with, each mapped to one HTTP status by app/api/errors.py.

StemhookError
├── Unauthorized          401  missing or wrong API token, callback token or signature
│   └── RefusedDelivery   401  a signature first used for another body: kept as refused
├── NotFound              404  no such job or delivery
├── Conflict              409  the request cannot be carried out on this resource as it is
├── Gone                  410  what was asked for is no longer kept (retention)
├── RangeNotSatisfiable   416  a Range beyond the stored file (answered with its size)
├── InvalidRequest        422  a query value is wrong (names the field)
├── RequestTimeout        408  the body did not arrive within STEMHOOK_BODY_TIMEOUT_S
├── PayloadTooLarge       413  body above STEMHOOK_MAX_BODY_BYTES
├── TooManyWaiters        429  STEMHOOK_MAX_WAITERS long polls already wait; retry later
├── BadPayload            400  body stored as a rejected delivery; says what was wrong
│   └── UnstorablePayload 400  parsed, but the database refused its jobs: kept as orphaned
├── StorageUnavailable    503  the database could not take the write in time; retry later
│   └── Overloaded        503  too many writes are waiting already (STEMHOOK_MAX_PENDING_*)
└── NotReady              503  /readyz: this process cannot do its work now

Parsers raise app.providers.model.ParseError, which the receive pipeline turns into BadPayload
once the body is stored; so does anything else raised while parsing a body (the body caused it,
app/ingest/admission.py). Anything else raised elsewhere is a bug and answers 500.
"""

from __future__ import annotations


class StemhookError(Exception):
    status_code = 500
    code = "internal"
    delivery_id: int | None = None  # the delivery kept for inspection, if one was
    # When set, answered as Retry-After: clients that honour it come back once it may succeed.
    retry_after_s: int | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def headers(self) -> dict[str, str] | None:
        """Headers the answer carries besides the error body."""
        return None if self.retry_after_s is None else {"Retry-After": str(self.retry_after_s)}


class Unauthorized(StemhookError):
    status_code = 401
    code = "unauthorized"


class RefusedDelivery(Unauthorized):
    def __init__(self, message: str, *, delivery_id: int) -> None:
        super().__init__(message)
        self.delivery_id = delivery_id


class NotFound(StemhookError):
    status_code = 404
    code = "not_found"


class Conflict(StemhookError):
    status_code = 409
    code = "conflict"


class Gone(StemhookError):
    status_code = 410
    code = "gone"


class InvalidRequest(StemhookError):
    status_code = 422
    code = "invalid_request"


class RequestTimeout(StemhookError):
    status_code = 408
    code = "request_timeout"


class PayloadTooLarge(StemhookError):
    status_code = 413
    code = "payload_too_large"


class TooManyWaiters(StemhookError):
    status_code = 429
    code = "too_many_waiters"
    retry_after_s = 1


class BadPayload(StemhookError):
    status_code = 400
    code = "bad_payload"

    def __init__(self, message: str, *, delivery_id: int) -> None:
        super().__init__(message)
        self.delivery_id = delivery_id


class UnstorablePayload(BadPayload):
    code = "unstorable_payload"


class StorageUnavailable(StemhookError):
    status_code = 503
    code = "storage_unavailable"
    retry_after_s = 5


class Overloaded(StorageUnavailable):
    code = "overloaded"


class NotReady(StemhookError):
    status_code = 503
    code = "not_ready"


class RangeNotSatisfiable(StemhookError):
    status_code = 416
    code = "range_not_satisfiable"

    def __init__(self, size: int) -> None:
        super().__init__(f"the range asked for is outside the file's {size} bytes")
        self.size = size

    def headers(self) -> dict[str, str] | None:
        return {"Content-Range": f"bytes */{self.size}"}

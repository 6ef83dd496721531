"""Opaque cursors: what a listing needs to continue, as URL-safe text clients pass back."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any

import orjson

from app.errors import InvalidRequest
from app.queries.jobs import JobPosition


def encode_job_position(position: JobPosition | None) -> str | None:
    if position is None:
        return None
    return _encode(
        "jobs",
        {"w": position.watermark, "t": position.received_at.isoformat(), "i": position.job_pk},
    )


def decode_job_position(cursor: str | None) -> JobPosition | None:
    if cursor is None:
        return None
    fields = _decode("jobs", cursor)
    try:
        received_at = datetime.fromisoformat(fields["t"])
        if received_at.tzinfo is None:
            raise ValueError("naive time")
        return JobPosition(int(fields["w"]), received_at, int(fields["i"]))
    except (KeyError, TypeError, ValueError):
        raise _invalid() from None


def encode_before_id(listing: str, before_id: int | None) -> str | None:
    return None if before_id is None else _encode(listing, {"b": before_id})


def decode_before_id(listing: str, cursor: str | None) -> int | None:
    if cursor is None:
        return None
    before = _decode(listing, cursor).get("b")
    if not isinstance(before, int) or isinstance(before, bool):
        raise _invalid()
    return before


def _encode(listing: str, fields: dict[str, Any]) -> str:
    raw = orjson.dumps({"l": listing, **fields})
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _decode(listing: str, cursor: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        fields = orjson.loads(raw)
    except (binascii.Error, ValueError):
        raise _invalid() from None
    if not isinstance(fields, dict) or fields.get("l") != listing:
        raise _invalid()
    return fields


def _invalid() -> InvalidRequest:
    return InvalidRequest("cursor: not a cursor of this listing; pass back next_cursor unchanged")

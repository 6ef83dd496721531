"""Opaque cursors: what a listing needs to continue, as URL-safe text clients pass back."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Any

import orjson

from app.errors import InvalidRequest
from app.queries.jobs import MAX_ID, JobPosition


def encode_job_position(position: JobPosition | None) -> str | None:
    if position is None:
        return None
    return _encode(
        "jobs",
        {"m": position.mark, "t": position.received_at.isoformat(), "i": position.job_pk},
    )


def decode_job_position(cursor: str | None) -> JobPosition | None:
    if cursor is None:
        return None
    fields = _decode("jobs", cursor, {"m", "t", "i"})
    return JobPosition(_identifier(fields["m"]), _time(fields["t"]), _identifier(fields["i"]))


def encode_before_id(listing: str, before_id: int | None) -> str | None:
    return None if before_id is None else _encode(listing, {"b": before_id})


def decode_before_id(listing: str, cursor: str | None) -> int | None:
    if cursor is None:
        return None
    # A page that has a next one ends at a delivery with another below it: never at id 1.
    return _identifier(_decode(listing, cursor, {"b"})["b"], least=2)


def _encode(listing: str, fields: dict[str, Any]) -> str:
    raw = orjson.dumps({"l": listing, **fields})
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _decode(listing: str, cursor: str, names: set[str]) -> dict[str, Any]:
    """The cursor's fields, exactly `names` (and the listing's name) or refused."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        fields = orjson.loads(raw)
    except (binascii.Error, ValueError):
        raise _invalid() from None
    if not isinstance(fields, dict) or fields.get("l") != listing or fields.keys() != names | {"l"}:
        raise _invalid()
    return fields


def _identifier(value: object, *, least: int = 1) -> int:
    """A row id, as the databases hold them (beyond 2**63 - 1 SQLite cannot even compare)."""
    if not isinstance(value, int) or isinstance(value, bool) or not least <= value <= MAX_ID:
        raise _invalid()
    return value


def _time(value: object) -> datetime:
    if not isinstance(value, str):
        raise _invalid()
    try:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            raise ValueError("naive time")
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise _invalid() from None


def _invalid() -> InvalidRequest:
    return InvalidRequest("cursor: not a cursor of this listing; pass back next_cursor unchanged")

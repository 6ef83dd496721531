"""Submissions as the web process hands them over, for the writer's tests."""

from __future__ import annotations

from datetime import UTC, datetime

from app.ingest.intake import Arrival, Submission


def detected(
    body: bytes, *, received_at: datetime | None = None, headers: dict[str, str] | None = None
) -> Submission:
    """A body posted to /callbacks (family detected), with no request metadata but `headers`
    (names lower-case, as they are kept)."""
    arrival = Arrival(
        received_at=received_at or datetime.now(UTC),
        endpoint="auto",
        content_type=None,
        client_addr=None,
        headers=headers or {},
        body=body,
    )
    return Submission(arrival=arrival, expected=None)

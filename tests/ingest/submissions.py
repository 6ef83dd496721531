"""Submissions as the web process or the poller hands them over, for the writer's tests."""

from __future__ import annotations

from datetime import UTC, datetime

from app.ingest.intake import Arrival, Submission
from app.providers.model import Provider
from app.providers.registry import poll_endpoint


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


def polled(body: bytes, provider: Provider) -> Submission:
    """An answer of `provider`'s job query API, as the poller hands it over."""
    arrival = Arrival(
        received_at=datetime.now(UTC),
        endpoint=poll_endpoint(provider),
        content_type="application/json",
        client_addr=None,
        headers={},
        body=body,
    )
    return Submission(arrival=arrival, expected=provider)

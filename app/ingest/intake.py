"""What the web layer hands to the writer, and what the writer answers once committed.

Submissions and receipts cross between the web process and the writer process once per
delivery, pickled. They pickle as plain values (times as integer microseconds, enums as their
values): pickle's defaults for a slotted dataclass, an aware datetime and enum members cost the
web process ~16 us a delivery, where each microsecond is throughput.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from app.providers.model import Job, Provider, State

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class Outcome(StrEnum):
    ACCEPTED = "accepted"  # at least one job was created or changed state
    DUPLICATE = "duplicate"  # every job was already known in this state (or a later one)
    REJECTED = "rejected"  # the payload could not be parsed; kept for inspection and replay
    ORPHANED = "orphaned"  # parsed, but the database refused its jobs; kept for replay


@dataclass(frozen=True, slots=True)
class Arrival:
    """One HTTP delivery as received, before anything is made of its body."""

    received_at: datetime
    endpoint: str
    content_type: str | None
    client_addr: str | None
    headers: dict[str, str]
    body: bytes

    def __reduce__(self) -> tuple[Any, ...]:
        at = _micros(self.received_at)
        return (
            _arrival,
            (at, self.endpoint, self.content_type, self.client_addr, self.headers, self.body),
        )


@dataclass(frozen=True, slots=True)
class Submission:
    """An arrival handed to the writer, with what admitting it needs."""

    arrival: Arrival
    expected: Provider | None  # the family the endpoint is for; None: detect it
    replay_of: int | None = None
    # When the sender signed (Suno): the arrival, or for a replay the original arrival.
    signed_at: datetime | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        expected = None if self.expected is None else self.expected.value
        signed_at = None if self.signed_at is None else _micros(self.signed_at)
        return (_submission, (self.arrival, expected, self.replay_of, signed_at))


@dataclass(frozen=True, slots=True, kw_only=True)
class Intake:
    """An arrival with what the parsers made of it: jobs, or the reason there are none."""

    arrival: Arrival
    provider: Provider | None
    jobs: tuple[Job, ...] = ()
    error: str | None = None
    replay_of: int | None = None


@dataclass(frozen=True, slots=True)
class JobReceipt:
    provider: Provider
    job_id: str
    state: State
    duplicate: bool

    def __reduce__(self) -> tuple[Any, ...]:
        return (_job_receipt, (self.provider.value, self.job_id, self.state.value, self.duplicate))


@dataclass(frozen=True, slots=True)
class Receipt:
    delivery_id: int
    outcome: Outcome
    provider: Provider | None = None
    jobs: tuple[JobReceipt, ...] = ()
    error: str | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        provider = None if self.provider is None else self.provider.value
        values = (self.delivery_id, self.outcome.value, provider, self.jobs, self.error)
        return (_receipt, values)


def _micros(at: datetime) -> int:
    return (at - _EPOCH) // _MICROSECOND


def _time(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def _arrival(at: int, *values: Any) -> Arrival:
    return Arrival(_time(at), *values)


def _submission(
    arrival: Arrival, expected: str | None, replay_of: int | None, signed_at: int | None
) -> Submission:
    return Submission(
        arrival,
        None if expected is None else Provider(expected),
        replay_of,
        None if signed_at is None else _time(signed_at),
    )


def _job_receipt(provider: str, job_id: str, state: str, duplicate: bool) -> JobReceipt:
    return JobReceipt(Provider(provider), job_id, State(state), duplicate)


def _receipt(
    delivery_id: int,
    outcome: str,
    provider: str | None,
    jobs: tuple[JobReceipt, ...],
    error: str | None,
) -> Receipt:
    return Receipt(
        delivery_id, Outcome(outcome), None if provider is None else Provider(provider), jobs, error
    )

"""What the web layer hands to the writer, and what the writer answers once committed.

Submissions and receipts cross between the web process and the writer process once per
delivery, as flat tuples of plain values (`to_wire`, `from_wire`; times as integer microseconds,
enums as their values) that app/ingest/frames.py sends, because pickle's defaults for
dataclasses, aware datetimes and enum members cost the web process, where each microsecond is
throughput (docs/decisions/0007-the-web-processs-hot-path.md). For the same reason they are
`normalized` values (read-only to the type checker, not guarded at run time), and enum values
are turned back into members by a dict lookup rather than by calling the enum.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TypeVar

from app.providers.model import Job, Provider, State, normalized

# What crosses between the processes: plain values only (app/ingest/frames.py). Times are
# integer microseconds since the epoch, enum members their values.
SubmissionWire = tuple[
    int, str, str | None, str | None, dict[str, str], bytes, str | None, int | None, int | None
]
ReceiptWire = tuple[int, str, str | None, tuple[tuple[str, str, str, bool], ...], str | None]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class Outcome(StrEnum):
    ACCEPTED = "accepted"  # at least one job was created or changed state
    DUPLICATE = "duplicate"  # every job was already known in this state (or a later one)
    # An unsigned callback claiming a final state its provider has not confirmed yet
    # (STEMHOOK_CONFIRM_BY_POLL): that job was not merged; the provider's answer decides.
    UNCONFIRMED = "unconfirmed"
    REJECTED = "rejected"  # the payload could not be parsed; kept for inspection and replay
    ORPHANED = "orphaned"  # parsed, but the database refused its jobs; kept for replay
    # Its Suno signature was first used for another body: a forgery, kept as evidence, no jobs.
    REFUSED = "refused"


@normalized
class Arrival:
    """One HTTP delivery as received, before anything is made of its body."""

    received_at: datetime
    endpoint: str
    content_type: str | None
    client_addr: str | None
    headers: dict[str, str]
    body: bytes


@normalized
class Submission:
    """An arrival handed to the writer, with what admitting it needs."""

    arrival: Arrival
    expected: Provider | None  # the family the endpoint is for; None: detect it
    replay_of: int | None = None
    # When the sender signed (Suno): the arrival, or for a replay the original arrival.
    signed_at: datetime | None = None

    def to_wire(self) -> SubmissionWire:
        arrival = self.arrival
        return (
            _micros(arrival.received_at),
            arrival.endpoint,
            arrival.content_type,
            arrival.client_addr,
            arrival.headers,
            arrival.body,
            None if self.expected is None else self.expected.value,
            self.replay_of,
            None if self.signed_at is None else _micros(self.signed_at),
        )

    @staticmethod
    def from_wire(values: SubmissionWire) -> Submission:
        (
            received_at,
            endpoint,
            content_type,
            client_addr,
            headers,
            body,
            expected,
            replay_of,
            signed_at,
        ) = values
        arrival = Arrival(
            received_at=_time(received_at),
            endpoint=endpoint,
            content_type=content_type,
            client_addr=client_addr,
            headers=headers,
            body=body,
        )
        return Submission(
            arrival=arrival,
            expected=None if expected is None else _provider(expected),
            replay_of=replay_of,
            signed_at=None if signed_at is None else _time(signed_at),
        )


@normalized
class Intake:
    """An arrival with what the parsers made of it: jobs, or the reason there are none."""

    arrival: Arrival
    provider: Provider | None
    jobs: tuple[Job, ...] = ()
    error: str | None = None
    replay_of: int | None = None
    # The X-Webhook-Timestamp of a verified Suno signature, which vouches for one body only.
    signed_timestamp: str | None = None
    refused: bool = False  # with `error`: the signature vouches for another body
    # Final jobs of an unsigned callback of a provider STEMHOOK_CONFIRM_BY_POLL names: not
    # merged, their claims kept until the provider's own answer decides them.
    held: tuple[Job, ...] = ()


@normalized
class JobReceipt:
    provider: Provider
    job_id: str
    state: State
    duplicate: bool


@normalized
class Receipt:
    delivery_id: int
    outcome: Outcome
    provider: Provider | None = None
    jobs: tuple[JobReceipt, ...] = ()
    error: str | None = None

    def to_wire(self) -> ReceiptWire:
        jobs = tuple(
            (job.provider.value, job.job_id, job.state.value, job.duplicate) for job in self.jobs
        )
        provider = None if self.provider is None else self.provider.value
        return (self.delivery_id, self.outcome.value, provider, jobs, self.error)

    @staticmethod
    def from_wire(values: ReceiptWire) -> Receipt:
        delivery_id, outcome, provider, jobs, error = values
        return Receipt(
            delivery_id=delivery_id,
            outcome=_outcome(outcome),
            provider=None if provider is None else _provider(provider),
            jobs=tuple(
                JobReceipt(
                    provider=_provider(job_provider),
                    job_id=job_id,
                    state=_state(state),
                    duplicate=duplicate,
                )
                for job_provider, job_id, state, duplicate in jobs
            ),
            error=error,
        )


_Member = TypeVar("_Member", bound=StrEnum)


def _members(enum: type[_Member]) -> Callable[[str], _Member]:
    return {member.value: member for member in enum}.__getitem__


_provider = _members(Provider)
_state = _members(State)
_outcome = _members(Outcome)


def _micros(at: datetime) -> int:
    return (at - _EPOCH) // _MICROSECOND


def _time(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)

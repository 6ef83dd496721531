"""What the web layer hands to the writer, and what the writer answers once committed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from app.providers.model import Job, Provider, State


class Outcome(StrEnum):
    ACCEPTED = "accepted"  # at least one job was created or changed state
    DUPLICATE = "duplicate"  # every job was already known in this state (or a later one)
    REJECTED = "rejected"  # the payload could not be parsed; kept for inspection and replay
    ORPHANED = "orphaned"  # parsed, but the database refused its jobs; kept for replay


@dataclass(frozen=True, slots=True, kw_only=True)
class Arrival:
    """One HTTP delivery as received, before anything is made of its body."""

    received_at: datetime
    endpoint: str
    content_type: str | None
    client_addr: str | None
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Intake:
    """An arrival with what the parsers made of it: jobs, or the reason there are none."""

    arrival: Arrival
    provider: Provider | None
    jobs: tuple[Job, ...] = ()
    error: str | None = None
    replay_of: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class JobReceipt:
    provider: Provider
    job_id: str
    state: State
    duplicate: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Receipt:
    delivery_id: int
    outcome: Outcome
    jobs: tuple[JobReceipt, ...] = ()
    error: str | None = None

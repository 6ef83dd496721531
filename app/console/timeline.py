"""A job's history in one list, oldest first: its state changes and the deliveries that
touched it (duplicates and poll answers included)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from app import models
from app.providers.registry import polled_provider


@dataclass(frozen=True, slots=True)
class Moment:
    at: datetime
    delivery_id: int
    # A state change: from (None when the job began) and to.
    from_state: str | None = None
    to_state: str | None = None
    # A delivery: its outcome, whether it changed nothing for this job, how it came.
    outcome: str | None = None
    duplicate: bool = False
    polled: bool = False
    replay_of: int | None = None
    endpoint: str | None = None

    @property
    def is_state(self) -> bool:
        return self.to_state is not None


def timeline(
    events: Sequence[models.JobEvent], deliveries: Sequence[tuple[models.Delivery, bool]]
) -> list[Moment]:
    """`deliveries`: each with whether it was a duplicate for the job. A delivery comes before
    the state change it caused."""
    moments = [
        Moment(
            at=delivery.received_at,
            delivery_id=delivery.id,
            outcome=delivery.outcome,
            duplicate=duplicate,
            polled=polled_provider(delivery.endpoint) is not None,
            replay_of=delivery.replay_of,
            endpoint=delivery.endpoint,
        )
        for delivery, duplicate in deliveries
    ]
    moments += [
        Moment(
            at=event.at,
            delivery_id=event.delivery_id,
            from_state=event.from_state,
            to_state=event.to_state,
        )
        for event in events
    ]
    return sorted(moments, key=lambda moment: (moment.at, moment.delivery_id, moment.is_state))

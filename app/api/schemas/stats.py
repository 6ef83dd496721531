"""Counts over a window of time."""

from __future__ import annotations

from datetime import datetime

from pydantic import ConfigDict

from app.api.schemas import examples
from app.api.schemas.common import Out
from app.ingest.intake import Outcome
from app.providers.model import Provider, State
from app.queries.stats import Stats


class JobCountOut(Out):
    provider: Provider
    state: State
    count: int


class DeliveryCountOut(Out):
    outcome: Outcome
    count: int


class StatsOut(Out):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.STATS]})

    since: datetime
    until: datetime
    jobs: list[JobCountOut]
    deliveries: list[DeliveryCountOut]

    @classmethod
    def of(cls, stats: Stats, *, since: datetime, until: datetime) -> StatsOut:
        return cls(
            since=since,
            until=until,
            jobs=[
                JobCountOut(provider=Provider(provider), state=State(state), count=count)
                for provider, state, count in stats.jobs
            ],
            deliveries=[
                DeliveryCountOut(outcome=Outcome(outcome), count=count)
                for outcome, count in stats.deliveries
            ],
        )

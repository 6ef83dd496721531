"""Deliveries as stored: the inbox listing, one delivery whole, and what a replay produced."""

from __future__ import annotations

from datetime import datetime
from typing import Self

from pydantic import ConfigDict, Field

from app import models
from app.api.schemas import examples
from app.api.schemas.common import BodyOut, Out
from app.api.schemas.receipts import JobReceiptOut
from app.headers import shown
from app.ingest.intake import Outcome, Receipt
from app.providers.model import Provider, State
from app.queries.deliveries import DeliveryDetail


class DeliveryOut(Out):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.DELIVERY]})

    id: int
    received_at: datetime
    endpoint: str = Field(
        description="the family endpoint it came to, 'auto' for /callbacks, or"
        " 'poll/<family>' for an answer of the family's job query API that stemhook asked for"
    )
    provider: Provider | None
    outcome: Outcome
    error: str | None = Field(
        description="why it was rejected or orphaned (or refused); for a callback its provider"
        " contradicted, what each said"
    )
    content_type: str | None
    client_addr: str | None
    body_size: int
    replay_of: int | None = Field(description="the delivery this one replays")

    @classmethod
    def of(cls, delivery: models.Delivery) -> Self:
        return cls(
            id=delivery.id,
            received_at=delivery.received_at,
            endpoint=delivery.endpoint,
            provider=None if delivery.provider is None else Provider(delivery.provider),
            outcome=Outcome(delivery.outcome),
            error=delivery.error,
            content_type=delivery.content_type,
            client_addr=delivery.client_addr,
            body_size=delivery.body_size,
            replay_of=delivery.replay_of,
        )


class JobDeliveryOut(DeliveryOut):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.JOB_DELIVERY]})

    duplicate: bool = Field(description="it left this job's state as it was")


class LinkedJobOut(Out):
    provider: Provider
    job_id: str
    duplicate: bool
    claimed_state: State | None = Field(
        description="the final state an unsigned callback said the job was in, held until the"
        " provider's own answer decided it (STEMHOOK_CONFIRM_BY_POLL); null where the delivery"
        " was merged"
    )


class ReplayRefOut(Out):
    id: int
    outcome: Outcome


class DeliveryDetailOut(DeliveryOut):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.DELIVERY_DETAIL]})

    headers: dict[str, str] = Field(
        description="the request headers kept (app/api/headers.py), signatures and other"
        " credentials left out"
    )
    body: BodyOut | None = Field(description="null once retention has dropped the body")
    jobs: list[LinkedJobOut]
    replays: list[ReplayRefOut]

    @classmethod
    def of_detail(cls, detail: DeliveryDetail) -> DeliveryDetailOut:
        delivery = detail.delivery
        return cls(
            **DeliveryOut.of(delivery).model_dump(),
            headers=shown(delivery.headers),
            body=BodyOut.of(delivery.body),
            jobs=[
                LinkedJobOut(
                    provider=Provider(job.provider),
                    job_id=job.job_id,
                    duplicate=job.duplicate,
                    claimed_state=None if job.claimed_state is None else State(job.claimed_state),
                )
                for job in detail.jobs
            ],
            replays=[
                ReplayRefOut(id=replay.id, outcome=Outcome(replay.outcome))
                for replay in detail.replays
            ],
        )


class ReplayOut(Out):
    """What the current parsers made of a stored delivery: a new delivery replaying it."""

    model_config = ConfigDict(json_schema_extra={"examples": [examples.REPLAY]})

    delivery_id: int
    replay_of: int
    outcome: Outcome
    error: str | None
    jobs: list[JobReceiptOut]

    @classmethod
    def of(cls, receipt: Receipt, *, replay_of: int) -> ReplayOut:
        return cls(
            delivery_id=receipt.delivery_id,
            replay_of=replay_of,
            outcome=receipt.outcome,
            error=receipt.error,
            jobs=[
                JobReceiptOut(
                    provider=job.provider,
                    job_id=job.job_id,
                    state=job.state,
                    duplicate=job.duplicate,
                )
                for job in receipt.jobs
            ],
        )

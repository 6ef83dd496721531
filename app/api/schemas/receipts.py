"""What a callback sender is answered once its delivery is committed."""

from __future__ import annotations

from typing import Literal

import orjson
from pydantic import ConfigDict

from app.api.schemas import examples
from app.api.schemas.common import Out
from app.ingest.intake import JobReceipt, Outcome, Receipt
from app.providers.model import Provider, State


class JobReceiptOut(Out):
    provider: Provider
    job_id: str
    state: State
    duplicate: bool

    @classmethod
    def of(cls, job: JobReceipt) -> JobReceiptOut:
        return cls(
            provider=job.provider, job_id=job.job_id, state=job.state, duplicate=job.duplicate
        )


class ReceiptOut(Out):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.RECEIPT]})

    status: Literal["received"] = "received"
    delivery_id: int
    outcome: Outcome
    duplicate: bool
    jobs: list[JobReceiptOut]

    @classmethod
    def of(cls, receipt: Receipt) -> ReceiptOut:
        return cls(
            delivery_id=receipt.delivery_id,
            outcome=receipt.outcome,
            duplicate=receipt.outcome is Outcome.DUPLICATE,
            jobs=[JobReceiptOut.of(job) for job in receipt.jobs],
        )


def receipt_json(receipt: Receipt) -> bytes:
    """ReceiptOut.of(receipt) as JSON, written directly because building and dumping the model
    costs every callback's answer more (docs/decisions/0007-the-web-processs-hot-path.md); tests
    hold the two to the same bytes."""
    return orjson.dumps(
        {
            "status": "received",
            "delivery_id": receipt.delivery_id,
            "outcome": receipt.outcome,
            "duplicate": receipt.outcome is Outcome.DUPLICATE,
            "jobs": [
                {
                    "provider": job.provider,
                    "job_id": job.job_id,
                    "state": job.state,
                    "duplicate": job.duplicate,
                }
                for job in receipt.jobs
            ],
        }
    )

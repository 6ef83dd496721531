"""What the write path writes of a callback's held claims (STEMHOOK_CONFIRM_BY_POLL), inside the
batch's transaction, and what the database's judging of claims made of the batch's receipts.

A held claim is an unsigned callback's word that a job is final, which only the provider's own
answer may make true (docs/decisions/0019). Its job is looked at after every merge of the batch,
so as the batch leaves it: created as a registration creates one where it is new, with only what
its poll is addressed by; its claim linked; its watch made due now while it is unfinished, or
the claim judged at once where it is final. The database judges (app/ingest/statements.py,
`resolve_claims`) every delivery with a claim on a job the batch finished, of a provider the
setting names, or found final.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from app.ingest.driver import Cursor
from app.ingest.intake import JobReceipt, Outcome, Receipt
from app.ingest.statements import WriteStatements
from app.polling.expect import NO_PROVIDER_STATE, UNKNOWN_KIND
from app.polling.watches import WatchPolicy
from app.providers.model import Job, Provider, State

# A held job: its delivery's place in the batch, the job, its delivery's id and arrival.
Held = tuple[int, Job, int, datetime]
# What judging made of each delivery it decided: its outcome and error, by its id.
Judged = dict[int, tuple[Outcome, str | None]]


@dataclass(slots=True)
class Claims:
    """The rows a batch's held claims write, and the jobs whose claims it has judged."""

    watch: WatchPolicy
    # The providers STEMHOOK_CONFIRM_BY_POLL names.
    confirm: frozenset[Provider]
    links: list[dict[str, Any]] = field(default_factory=list)
    # One a job: a statement meets each row once.
    due: dict[int, dict[str, Any]] = field(default_factory=dict)
    judged: set[int] = field(default_factory=set)

    def finished(self, job_pk: int, provider: Provider) -> None:
        """A job the batch made final from unfinished: the claims held about it are judged
        where the setting names its provider."""
        if provider in self.confirm:
            self.judged.add(job_pk)

    def hold(
        self, cursor: Cursor, sql: WriteStatements, held: list[Held], *, tx: int
    ) -> list[tuple[int, JobReceipt]]:
        """The held jobs' receipts, by their delivery's place: each as the job is now, a
        duplicate (nothing of the callback is merged, the job row stays as it was)."""
        if not held:
            return []
        rows = [_placeholder_row(job, received_at, tx=tx) for _, job, _, received_at in held]
        jobs = cursor.either_returning(sql.insert_placeholder, sql.find_job, rows)
        receipts = []
        for (index, job, delivery_id, at), (job_pk, stored) in zip(held, jobs, strict=True):
            state = State(stored)
            self.links.append(
                {
                    "delivery_id": delivery_id,
                    "job_pk": job_pk,
                    "duplicate": True,
                    "claimed_state": job.state.value,
                }
            )
            if state.is_final:
                self.judged.add(job_pk)
            else:
                self.due[job_pk] = self.watch.claimed_row(
                    job_pk=job_pk, provider=job.provider, at=at
                )
            receipt = JobReceipt(
                provider=job.provider, job_id=job.job_id, state=state, duplicate=True
            )
            receipts.append((index, receipt))
        return receipts

    def write(self, cursor: Cursor, sql: WriteStatements) -> Judged:
        """The claims' links and watches written (after the batch's own watches: a job created
        unfinished in the batch has its new watch made due), then the claims judged."""
        cursor.many(sql.insert_claim, self.links)
        cursor.many(sql.due_watch, list(self.due.values()))
        if not self.judged:
            return {}
        jobs = [{"job_pk": job_pk} for job_pk in sorted(self.judged)]
        if sql.lock_claims is not None:
            cursor.many(sql.lock_claims, jobs)
        decided = cursor.fetched(sql.resolve_claims, jobs)
        return {delivery_id: (Outcome(outcome), error) for delivery_id, outcome, error in decided}


def as_judged(receipts: list[Receipt], judged: Judged) -> list[Receipt]:
    """The receipts, those of deliveries judging decided saying what it decided."""
    if not judged:
        return receipts
    return [
        receipt
        if (decided := judged.get(receipt.delivery_id)) is None
        else replace(receipt, outcome=decided[0], error=decided[1])
        for receipt in receipts
    ]


def _placeholder_row(job: Job, received_at: datetime, *, tx: int) -> dict[str, Any]:
    """A held job as a registration creates one (app/polling/expect.py), registered by this
    transaction, with only what its poll is addressed by (a CI job's bucket, region and queue):
    the callback's word on anything else waits for the provider's."""
    return {
        "provider": job.provider.value,
        "job_id": job.job_id,
        "kind": UNKNOWN_KIND,
        "state": State.SUBMITTED.value,
        "provider_state": NO_PROVIDER_STATE,
        "input_bucket": job.input.bucket,
        "input_region": job.input.region,
        "queue_id": job.queue_id,
        "deliveries": 0,
        "first_received_at": received_at,
        "last_received_at": received_at,
        "last_tx": tx,
        "registered_tx": tx,
    }

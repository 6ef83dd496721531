"""What a batch of deliveries writes, inside a transaction the writer owns (nothing here commits).

Every statement runs once per batch, over all its rows: first, on PostgreSQL, the locks of the
batch's jobs in ascending order (so that batches in other processes never deadlock: see
app/ingest/statements.py), then the signatures signed deliveries claim (which decide whether
they are refused), then the deliveries' raw rows (whose ids the job rows point to), then their
jobs (whose answers decide everything else: inserted where new, merged by the upsert where
not), then the jobs whose final state an unsigned callback only claims (STEMHOOK_CONFIRM_BY_POLL:
created as a registration would be where new, never merged), then events, links, duplicate marks,
files and watches, and last the claims the batch lets the database judge. On PostgreSQL each is
one statement over all its rows, or a few where a key comes back in the batch
(app/ingest/driver.py); on SQLite each runs once a row. A batch that holds no claim and finishes
no job of a provider the setting names runs none of the statements claims need.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from app.ingest.claims import Claims, Judged, as_judged
from app.ingest.driver import Cursor, answered
from app.ingest.intake import Intake, JobReceipt, Outcome, Receipt
from app.ingest.statements import WriteStatements
from app.mirror.sources import MAX_FILES_PER_JOB, MirrorPolicy
from app.polling.watches import WatchPolicy
from app.providers.model import Job, OutputFile, Provider, State


@dataclass(slots=True)
class _RowsAfterJobs:
    """The events, links, duplicate marks and files to fetch the job rows' answers decide,
    written last; and the held claims (app/ingest/claims.py)."""

    mirror: MirrorPolicy
    watch: WatchPolicy
    claims: Claims
    events: list[dict[str, Any]] = field(default_factory=list)
    links: list[dict[str, Any]] = field(default_factory=list)
    duplicates: list[dict[str, Any]] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)
    watches: list[dict[str, Any]] = field(default_factory=list)
    ended: list[dict[str, Any]] = field(default_factory=list)

    def write(self, cursor: Cursor, sql: WriteStatements) -> Judged:
        """The rows written; what judging the claims decided."""
        cursor.many(sql.insert_event, self.events)
        cursor.many(sql.insert_link, self.links)
        cursor.many(sql.mark_duplicate, self.duplicates)
        cursor.many(sql.insert_file, self.files)
        # In this order: a job created unfinished and finished in one batch ends its new watch.
        cursor.many(sql.insert_watch, self.watches)
        cursor.many(sql.end_watch, self.ended)
        return self.claims.write(cursor, sql)


REUSED_SIGNATURE = "X-Webhook-Signature was already used for another body of this task"


def begin(cursor: Cursor, sql: WriteStatements, *, timeout_ms: int) -> int:
    """The transaction's number (app/ingest/statements.py), its first statement; on PostgreSQL
    the server also cancels any later statement of it that outlives `timeout_ms`."""
    number: int = cursor.one(sql.begin, {"statement_timeout": str(timeout_ms)})[0]
    return number


def store_batch(
    cursor: Cursor,
    sql: WriteStatements,
    intakes: list[Intake],
    *,
    tx: int,
    mirror: MirrorPolicy,
    watch: WatchPolicy,
    confirm: frozenset[Provider] = frozenset(),
) -> list[Receipt]:
    """The batch written in the transaction numbered `tx` (begin's answer); the output files of
    the jobs it makes succeed queued for fetching as `mirror` says, the jobs it creates
    unfinished watched as `watch` says, and the watches of those it finishes ended; the claims
    held of those jobs of `confirm`'s providers it finishes judged."""
    _lock_jobs(cursor, sql, intakes)
    intakes = _claim_signatures(cursor, sql, intakes)
    rows = [_delivery_row(intake, *_first_outcome(intake), tx=tx) for intake in intakes]
    returned = cursor.many_returning(sql.insert_delivery, rows)
    delivery_ids: list[int] = [answered(row)[0] for row in returned]
    merges = [
        (index, job, delivery_id)
        for index, (intake, delivery_id) in enumerate(zip(intakes, delivery_ids, strict=True))
        for job in intake.jobs
    ]
    job_rows = [
        _job_row(job, delivery_id, intakes[index].arrival.received_at, tx=tx)
        for index, job, delivery_id in merges
    ]
    later = _RowsAfterJobs(mirror=mirror, watch=watch, claims=Claims(watch, confirm))
    merged: dict[int, list[JobReceipt]] = {}
    # A job seen twice in the batch is inserted by its first row and merged by the later ones,
    # still in their order: merges run after all inserts, and a job that existed for one row
    # exists for every later one.
    written = cursor.either_returning(sql.insert_job, sql.upsert_job, job_rows)
    for (index, job, delivery_id), result in zip(merges, written, strict=True):
        receipt = _merged(result, job, delivery_id, intakes[index].arrival.received_at, later)
        merged.setdefault(index, []).append(receipt)
    held = [
        (index, job, delivery_id, intake.arrival.received_at)
        for index, (intake, delivery_id) in enumerate(zip(intakes, delivery_ids, strict=True))
        for job in intake.held
    ]
    for index, receipt in later.claims.hold(cursor, sql, held, tx=tx):
        merged.setdefault(index, []).append(receipt)
    receipts = [
        _receipt(intake, delivery_id, tuple(merged.get(index, ())), later)
        for index, (intake, delivery_id) in enumerate(zip(intakes, delivery_ids, strict=True))
    ]
    return as_judged(receipts, later.write(cursor, sql))


def _lock_jobs(cursor: Cursor, sql: WriteStatements, intakes: list[Intake]) -> None:
    if sql.lock_jobs is None:
        return
    keys = sorted({_job_key(job) for intake in intakes for job in (*intake.jobs, *intake.held)})
    if keys:
        cursor.run(sql.lock_jobs, {"keys": keys})


def _job_key(job: Job) -> int:
    """The job's advisory lock key: 64 bits of a digest of its key (a collision only makes two
    jobs wait for each other)."""
    digest = hashlib.blake2b(f"{job.provider.value}\0{job.job_id}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


def _claim_signatures(cursor: Cursor, sql: WriteStatements, intakes: list[Intake]) -> list[Intake]:
    """The intakes, those whose signature the database holds for another body refused: kept
    without jobs as evidence of a forgery (a replayed signature), never merged."""
    claims = [
        (index, _signature_row(intake, job, intake.signed_timestamp))
        for index, intake in enumerate(intakes)
        if intake.signed_timestamp is not None
        for job in intake.jobs
    ]
    answers = cursor.many_returning(sql.claim_signature, [row for _, row in claims])
    refused = {index for (index, _), answer in zip(claims, answers, strict=True) if answer is None}
    return [
        replace(intake, jobs=(), error=REUSED_SIGNATURE, refused=True)
        if index in refused
        else intake
        for index, intake in enumerate(intakes)
    ]


def _signature_row(intake: Intake, job: Job, signed_timestamp: str) -> dict[str, Any]:
    return {
        "provider": job.provider.value,
        "task_id": job.job_id,
        "signed_timestamp": signed_timestamp,
        "body_sha256": hashlib.sha256(intake.arrival.body).hexdigest(),
    }


def keep_raw(
    cursor: Cursor,
    sql: WriteStatements,
    intake: Intake,
    outcome: Outcome,
    error: str,
    *,
    tx: int,
) -> Receipt:
    """Store the delivery without jobs, with the reason why, for inspection and replay. A signed
    one still claims its signature, or is refused if another body holds it: a delivery kept
    orphaned must not leave its signature free for a forgery."""
    _lock_jobs(cursor, sql, [intake])
    [intake] = _claim_signatures(cursor, sql, [intake])
    if intake.refused and intake.error is not None:
        outcome, error = Outcome.REFUSED, intake.error
    row = _delivery_row(intake, outcome, error, tx=tx)
    (delivery_id,) = cursor.one(sql.insert_delivery, row)
    return Receipt(delivery_id=delivery_id, outcome=outcome, provider=intake.provider, error=error)


def _first_outcome(intake: Intake) -> tuple[Outcome, str | None]:
    """What the delivery row says before its jobs are merged (a duplicate is marked after)."""
    if intake.error is not None:
        return _error_outcome(intake), intake.error
    return (Outcome.UNCONFIRMED if intake.held else Outcome.ACCEPTED), None


def _error_outcome(intake: Intake) -> Outcome:
    return Outcome.REFUSED if intake.refused else Outcome.REJECTED


def _receipt(
    intake: Intake, delivery_id: int, jobs: tuple[JobReceipt, ...], later: _RowsAfterJobs
) -> Receipt:
    if intake.error is not None:
        return Receipt(
            delivery_id=delivery_id,
            outcome=_error_outcome(intake),
            provider=intake.provider,
            error=intake.error,
        )
    if intake.held:  # until its claims are judged
        return Receipt(
            delivery_id=delivery_id,
            outcome=Outcome.UNCONFIRMED,
            provider=intake.provider,
            jobs=jobs,
        )
    outcome = Outcome.ACCEPTED
    if all(job.duplicate for job in jobs):
        later.duplicates.append({"id": delivery_id})
        outcome = Outcome.DUPLICATE
    return Receipt(delivery_id=delivery_id, outcome=outcome, provider=intake.provider, jobs=jobs)


def _delivery_row(
    intake: Intake, outcome: Outcome, error: str | None, *, tx: int
) -> dict[str, Any]:
    arrival = intake.arrival
    return {
        "received_at": arrival.received_at,
        "endpoint": arrival.endpoint,
        "provider": None if intake.provider is None else intake.provider.value,
        "outcome": outcome.value,
        # PostgreSQL text cannot hold NUL, and a message may quote the payload.
        "error": None if error is None else error.replace("\x00", "\\x00"),
        "content_type": arrival.content_type,
        "client_addr": arrival.client_addr,
        "headers": arrival.headers,
        "body_size": len(arrival.body),
        "body": arrival.body,
        "replay_of": intake.replay_of,
        "tx": tx,
    }


def _merged(
    result: Sequence[Any], job: Job, delivery_id: int, received_at: datetime, later: _RowsAfterJobs
) -> JobReceipt:
    """What the job's insert or upsert answered: its events, links, files and watch to write."""
    job_pk, state, previous_state, state_delivery_id, outputs_delivery_id = result
    changed = state_delivery_id == delivery_id
    if changed and previous_state is None and not State(state).is_final:
        later.watches.append(
            later.watch.watch_row(job_pk=job_pk, provider=job.provider, heard_at=received_at)
        )
    elif changed and State(state).is_final and _was_unfinished(previous_state):
        later.ended.append({"job_pk": job_pk})
        later.claims.finished(job_pk, job.provider)
    if state == State.SUCCEEDED and outputs_delivery_id == delivery_id:
        # The job succeeded with this delivery's outputs: they are the files it produced.
        for position, output in enumerate(job.outputs[:MAX_FILES_PER_JOB]):
            row = later.mirror.file_row(output, job_pk=job_pk, position=position, now=received_at)
            if row is not None:
                later.files.append(row)
    if changed:
        later.events.append(
            {
                "job_pk": job_pk,
                "delivery_id": delivery_id,
                "from_state": previous_state,
                "to_state": state,
                "at": received_at,
            }
        )
    later.links.append({"delivery_id": delivery_id, "job_pk": job_pk, "duplicate": not changed})
    return JobReceipt(
        provider=job.provider, job_id=job.job_id, state=State(state), duplicate=not changed
    )


def _was_unfinished(state: str | None) -> bool:
    """Whether the job was watched before this change: it existed (a job created final never
    is), unfinished."""
    return state is not None and not State(state).is_final


def output_document(output: OutputFile) -> dict[str, str | None]:
    """An output as the job's `outputs` column holds it."""
    return {
        "role": output.role.value,
        "url": output.url,
        "bucket": output.bucket,
        "region": output.region,
        "object": output.object,
        "content_id": output.content_id,
        "destination": output.destination,
        "file_name": output.file_name,
        "md5": output.md5,
    }


def _job_row(job: Job, delivery_id: int, received_at: datetime, *, tx: int) -> dict[str, Any]:
    media = job.media_info
    return {
        "provider": job.provider.value,
        "job_id": job.job_id,
        "kind": job.kind,
        "state": job.state.value,
        "provider_state": job.provider_state,
        "error_code": job.error.code if job.error else None,
        "error_message": job.error.message if job.error else None,
        "custom_id": job.custom_id,
        "user_data": job.user_data,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "input_bucket": job.input.bucket,
        "input_region": job.input.region,
        "input_object": job.input.object,
        "input_url": job.input.url,
        "media_info": None
        if media is None
        else {
            "format_name": media.format_name,
            "duration_s": media.duration_s,
            "bitrate_kbps": media.bitrate_kbps,
            "size_bytes": media.size_bytes,
            "audio_streams": [
                {
                    "codec": stream.codec,
                    "sample_rate": stream.sample_rate,
                    "channels": stream.channels,
                    "bitrate_kbps": stream.bitrate_kbps,
                    "duration_s": stream.duration_s,
                }
                for stream in media.audio_streams
            ],
        },
        "outputs": [output_document(output) for output in job.outputs] if job.outputs else None,
        "tts_input": job.tts.input if job.tts else None,
        "tts_input_type": job.tts.input_type if job.tts else None,
        "workflow_id": job.workflow.workflow_id if job.workflow else None,
        "workflow_name": job.workflow.workflow_name if job.workflow else None,
        "workflow_run_id": job.workflow.run_id if job.workflow else None,
        "workflow_node": job.workflow.name if job.workflow else None,
        "tasks": None
        if job.tasks is None
        else [
            {
                "type": task.type,
                "name": task.name,
                "job_id": task.job_id,
                "state": None if task.state is None else task.state.value,
                "provider_state": task.provider_state,
                "template_id": task.template_id,
                "template_name": task.template_name,
                "created_at": _contract_time(task.created_at),
                "finished_at": _contract_time(task.finished_at),
            }
            for task in job.tasks
        ],
        "template_id": job.template_id,
        "template_name": job.template_name,
        "queue_id": job.queue_id,
        "deliveries": 1,
        "first_received_at": received_at,
        "last_received_at": received_at,
        "last_delivery_id": delivery_id,
        "state_delivery_id": delivery_id,
        "outputs_delivery_id": delivery_id if job.outputs else None,
        "previous_state": None,
        "last_tx": tx,
    }


def _contract_time(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

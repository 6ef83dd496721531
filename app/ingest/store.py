"""What a batch of deliveries writes, inside a transaction the writer owns (nothing here commits).

Per delivery only two statements run at once: its raw row (whose id the job rows point to) and
the upsert of each of its jobs (whose answer decides everything else). Events, links, outputs
and duplicate marks are collected and written once per batch with executemany.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from app.ingest.driver import Cursor
from app.ingest.intake import Intake, JobReceipt, Outcome, Receipt
from app.ingest.statements import WriteStatements
from app.providers.model import Job, OutputFile, State


@dataclass(slots=True)
class _Later:
    """Rows written at the end of the batch; outputs by job, the last winner's replacing."""

    events: list[dict[str, Any]] = field(default_factory=list)
    links: list[dict[str, Any]] = field(default_factory=list)
    outputs: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    duplicates: list[dict[str, Any]] = field(default_factory=list)

    def write(self, cursor: Cursor, sql: WriteStatements) -> None:
        cursor.many(sql.insert_outputs, [row for rows in self.outputs.values() for row in rows])
        cursor.many(sql.insert_event, self.events)
        cursor.many(sql.insert_link, self.links)
        cursor.many(sql.mark_duplicate, self.duplicates)


def store_batch(cursor: Cursor, sql: WriteStatements, intakes: list[Intake]) -> list[Receipt]:
    later = _Later()
    receipts = [_store(cursor, sql, intake, later) for intake in intakes]
    later.write(cursor, sql)
    return receipts


def keep_raw(
    cursor: Cursor, sql: WriteStatements, intake: Intake, outcome: Outcome, error: str
) -> Receipt:
    """Store the delivery without jobs, with the reason why, for inspection and replay."""
    delivery_id = _insert_delivery(cursor, sql, intake, outcome, error)
    return Receipt(delivery_id=delivery_id, outcome=outcome, error=error)


def _store(cursor: Cursor, sql: WriteStatements, intake: Intake, later: _Later) -> Receipt:
    if intake.error is not None:
        return keep_raw(cursor, sql, intake, Outcome.REJECTED, intake.error)
    delivery_id = _insert_delivery(cursor, sql, intake, Outcome.ACCEPTED, None)
    receipts = tuple(_merge(cursor, sql, job, delivery_id, intake, later) for job in intake.jobs)
    if all(receipt.duplicate for receipt in receipts):
        later.duplicates.append({"delivery_id": delivery_id})
        return Receipt(delivery_id=delivery_id, outcome=Outcome.DUPLICATE, jobs=receipts)
    return Receipt(delivery_id=delivery_id, outcome=Outcome.ACCEPTED, jobs=receipts)


def _insert_delivery(
    cursor: Cursor, sql: WriteStatements, intake: Intake, outcome: Outcome, error: str | None
) -> int:
    arrival = intake.arrival
    row = {
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
    }
    delivery_id: int = cursor.one(sql.insert_delivery, row)[0]
    return delivery_id


def _merge(
    cursor: Cursor,
    sql: WriteStatements,
    job: Job,
    delivery_id: int,
    intake: Intake,
    later: _Later,
) -> JobReceipt:
    received_at = intake.arrival.received_at
    job_pk, state, previous_state, state_delivery_id, outputs_delivery_id = cursor.one(
        sql.upsert_job, _job_row(job, delivery_id, received_at)
    )
    changed = state_delivery_id == delivery_id
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
    if outputs_delivery_id == delivery_id:
        created = changed and previous_state is None
        # Rows stored before this batch go now; rows of this batch are not written yet.
        if not created and job_pk not in later.outputs:
            cursor.run(sql.delete_outputs, {"job_pk": job_pk})
        later.outputs[job_pk] = [
            _output_row(job_pk, position, output) for position, output in enumerate(job.outputs)
        ]
    later.links.append({"delivery_id": delivery_id, "job_pk": job_pk, "duplicate": not changed})
    return JobReceipt(
        provider=job.provider, job_id=job.job_id, state=State(state), duplicate=not changed
    )


def _output_row(job_pk: int, position: int, output: OutputFile) -> dict[str, Any]:
    return {
        "job_pk": job_pk,
        "position": position,
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


def _job_row(job: Job, delivery_id: int, received_at: datetime) -> dict[str, Any]:
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
    }


def _contract_time(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

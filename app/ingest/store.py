"""What one delivery writes, inside a transaction the writer owns (nothing here commits)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from app.ingest.intake import Intake, JobReceipt, Outcome, Receipt
from app.ingest.statements import WriteStatements
from app.providers.model import Job, State


def store(connection: Connection, sql: WriteStatements, intake: Intake) -> Receipt:
    if intake.error is not None:
        return keep_raw(connection, sql, intake, Outcome.REJECTED, intake.error)
    delivery_id = _insert_delivery(connection, sql, intake, Outcome.ACCEPTED, None)
    receipts = tuple(_merge(connection, sql, job, delivery_id, intake) for job in intake.jobs)
    if all(receipt.duplicate for receipt in receipts):
        connection.execute(sql.mark_duplicate, {"delivery_id": delivery_id})
        return Receipt(delivery_id=delivery_id, outcome=Outcome.DUPLICATE, jobs=receipts)
    return Receipt(delivery_id=delivery_id, outcome=Outcome.ACCEPTED, jobs=receipts)


def keep_raw(
    connection: Connection, sql: WriteStatements, intake: Intake, outcome: Outcome, error: str
) -> Receipt:
    """Store the delivery without jobs, with the reason why, for inspection and replay."""
    delivery_id = _insert_delivery(connection, sql, intake, outcome, error)
    return Receipt(delivery_id=delivery_id, outcome=outcome, error=error)


def _insert_delivery(
    connection: Connection,
    sql: WriteStatements,
    intake: Intake,
    outcome: Outcome,
    error: str | None,
) -> int:
    arrival = intake.arrival
    row = {
        "received_at": arrival.received_at,
        "endpoint": arrival.endpoint,
        "provider": intake.provider,
        "outcome": outcome,
        # PostgreSQL text cannot hold NUL, and a message may quote the payload.
        "error": None if error is None else error.replace("\x00", "\\x00"),
        "content_type": arrival.content_type,
        "client_addr": arrival.client_addr,
        "headers": arrival.headers,
        "body_size": len(arrival.body),
        "body": arrival.body,
        "replay_of": intake.replay_of,
    }
    delivery_id: int = connection.execute(sql.insert_delivery, row).scalar_one()
    return delivery_id


def _merge(
    connection: Connection, sql: WriteStatements, job: Job, delivery_id: int, intake: Intake
) -> JobReceipt:
    received_at = intake.arrival.received_at
    row = connection.execute(sql.upsert_job, _job_row(job, delivery_id, received_at)).one()
    changed = row.state_delivery_id == delivery_id
    created = changed and row.previous_state is None
    if changed:
        connection.execute(
            sql.insert_event,
            {
                "job_pk": row.id,
                "delivery_id": delivery_id,
                "from_state": row.previous_state,
                "to_state": row.state,
                "at": received_at,
            },
        )
    if row.outputs_delivery_id == delivery_id:
        if not created:
            connection.execute(sql.delete_outputs, {"job_pk": row.id})
        connection.execute(
            sql.insert_outputs,
            [
                {"job_pk": row.id, "position": position, **dataclasses.asdict(output)}
                for position, output in enumerate(job.outputs)
            ],
        )
    connection.execute(
        sql.insert_link, {"delivery_id": delivery_id, "job_pk": row.id, "duplicate": not changed}
    )
    return JobReceipt(
        provider=job.provider, job_id=job.job_id, state=State(row.state), duplicate=not changed
    )


def _job_row(job: Job, delivery_id: int, received_at: datetime) -> dict[str, Any]:
    return {
        "provider": job.provider,
        "job_id": job.job_id,
        "kind": job.kind,
        "state": job.state,
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
        "media_info": _json(job.media_info),
        "tts_input": job.tts.input if job.tts else None,
        "tts_input_type": job.tts.input_type if job.tts else None,
        "workflow_id": job.workflow.workflow_id if job.workflow else None,
        "workflow_name": job.workflow.workflow_name if job.workflow else None,
        "workflow_run_id": job.workflow.run_id if job.workflow else None,
        "workflow_node": job.workflow.name if job.workflow else None,
        "tasks": _json(job.tasks),
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


def _json(value: Any) -> Any:
    """Nested normalized objects as JSON-ready data, times in the contract's UTC form."""
    if value is None:
        return None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            field.name: _json(getattr(value, field.name)) for field in dataclasses.fields(value)
        }
    if isinstance(value, tuple | list):
        return [_json(item) for item in value]
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return value

"""What an arrival becomes before it is stored: jobs, or the reason it has none.

Shared by live deliveries and replays: parse the body with the current parsers, then check the
opt-in Suno signature against the stored headers, at the moment the delivery arrived (a replay
days later is judged by when the callback came, not by when it is replayed). The signature
covers the task id and time only: whether it was used for another body is for the database to
say when the delivery is stored (app/ingest/store.py), so the intake carries its timestamp.
"""

from __future__ import annotations

from app.ingest.intake import Arrival, Intake, Submission
from app.providers import suno
from app.providers.model import ParseError, Provider
from app.providers.registry import parse_callback


class BadSignature(Exception):
    """A Suno signature is required and missing, stale or wrong."""


def admit(submission: Submission, *, suno_key: str | None) -> Intake:
    arrival, expected, replay_of = submission.arrival, submission.expected, submission.replay_of
    try:
        parsed = parse_callback(arrival.body, content_type=arrival.content_type, provider=expected)
    except ParseError as exc:
        return Intake(arrival=arrival, provider=expected, error=str(exc), replay_of=replay_of)
    signed_timestamp = None
    if parsed.provider is Provider.SUNO and suno_key is not None:
        signed_at = (submission.signed_at or arrival.received_at).timestamp()
        _verify_suno(arrival, suno_key, [job.job_id for job in parsed.jobs], signed_at)
        signed_timestamp = arrival.headers.get("x-webhook-timestamp")
    return Intake(
        arrival=arrival,
        provider=parsed.provider,
        jobs=parsed.jobs,
        replay_of=replay_of,
        signed_timestamp=signed_timestamp,
    )


def _verify_suno(arrival: Arrival, key: str, task_ids: list[str], signed_at: float) -> None:
    for task_id in task_ids:
        if not suno.verify_signature(
            key=key,
            task_id=task_id,
            timestamp=arrival.headers.get("x-webhook-timestamp"),
            signature=arrival.headers.get("x-webhook-signature"),
            now=signed_at,
        ):
            raise BadSignature("X-Webhook-Signature is missing, stale or wrong")

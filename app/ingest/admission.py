"""What an arrival becomes before it is stored: jobs, or the reason it has none.

Shared by live deliveries and replays: parse the body with the current parsers, keep as rejected
one that lists more jobs than a delivery may create (a list of 30,000 held every other delivery
behind its transaction), then check the opt-in Suno signature against the stored headers, at
the moment the delivery arrived (a replay days later is judged by when the callback came, not
by when it is replayed).
"""

from __future__ import annotations

from app.ingest.intake import Arrival, Intake, Submission
from app.providers import suno
from app.providers.model import ParseError, Provider
from app.providers.registry import parse_callback


class BadSignature(Exception):
    """A Suno signature is required and missing, stale or wrong."""


def admit(submission: Submission, *, suno_key: str | None, max_jobs: int) -> Intake:
    arrival, expected, replay_of = submission.arrival, submission.expected, submission.replay_of
    try:
        parsed = parse_callback(arrival.body, content_type=arrival.content_type, provider=expected)
    except ParseError as exc:
        return Intake(arrival=arrival, provider=expected, error=str(exc), replay_of=replay_of)
    if len(parsed.jobs) > max_jobs:
        error = (
            f"the delivery lists {len(parsed.jobs)} jobs, more than the {max_jobs} one delivery"
            " may create (STEMHOOK_MAX_JOBS_PER_DELIVERY)"
        )
        return Intake(arrival=arrival, provider=parsed.provider, error=error, replay_of=replay_of)
    if parsed.provider is Provider.SUNO and suno_key is not None:
        signed_at = (submission.signed_at or arrival.received_at).timestamp()
        _verify_suno(arrival, suno_key, [job.job_id for job in parsed.jobs], signed_at)
    return Intake(arrival=arrival, provider=parsed.provider, jobs=parsed.jobs, replay_of=replay_of)


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

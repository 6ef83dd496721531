"""What an arrival becomes before it is stored: jobs, or the reason it has none.

Shared by live deliveries, poll answers and replays: parse the body with the current parsers (a
callback's, or for a poll endpoint its provider's query answer's), keep as rejected one that
lists more jobs than a delivery may create (one list of thousands held every other delivery
behind its transaction), then check the opt-in Suno signature against the stored headers, at
the moment the delivery arrived (a replay days later is judged by when the callback came, not by
when it is replayed). The signature covers the task id and time only: whether it was used for
another body is for the database to say when the delivery is stored (app/ingest/store.py), so
the intake carries its timestamp. A poll answer has no signature to check: stemhook asked the
provider's API for it over TLS, and no sender can choose a poll endpoint
(app/providers/registry.py).

An unsigned callback of a provider STEMHOOK_CONFIRM_BY_POLL names (`confirm`) has its final jobs
held rather than merged: anyone who knows the callback URL can say a job succeeded, so only the
provider's own answer to a poll may make it final (docs/decisions/0019). Unsigned is every
Tencent CI and Media Lab callback, and a Suno one while no Suno key is set (with one, an unsigned
Suno callback is refused above). A replay is admitted by the settings of the day it is replayed.

Whatever parsing raises is the body's fault, not only ParseError: a parser that trips over input
nobody foresaw (an unknown XML encoding is a LookupError inside expat) rejects that delivery,
stored raw, with a warning line naming the exception. The line is drawn around parsing alone: a
failure anywhere else (signature check, storage) is a bug or an outage and stays one.
"""

from __future__ import annotations

import logging

from app.ingest.intake import Arrival, Intake, Submission
from app.providers import suno
from app.providers.model import Job, ParseError, Provider
from app.providers.registry import (
    ParsedCallback,
    parse_callback,
    parse_poll_answer,
    polled_provider,
)

log = logging.getLogger(__name__)
# The stored reason quotes an unforeseen exception's text, which a body can make long.
_MAX_UNFORESEEN = 500
_NONE_HELD: tuple[Job, ...] = ()


class BadSignature(Exception):
    """A Suno signature is required and missing, stale or wrong."""


def admit(
    submission: Submission,
    *,
    suno_key: str | None,
    max_jobs: int,
    confirm: frozenset[Provider] = frozenset(),
) -> Intake:
    """The Intake the committer stores for one submission: its jobs, or why it has none; the
    final ones held when it is an unsigned callback of a provider in `confirm`.

    Raises BadSignature when a required Suno signature is missing, stale or wrong (answered 401).
    """
    arrival, expected, replay_of = submission.arrival, submission.expected, submission.replay_of
    polled = polled_provider(arrival.endpoint)
    parsed = _parse(arrival, expected, polled)
    if isinstance(parsed, str):
        provider = polled or expected
        return Intake(arrival=arrival, provider=provider, error=parsed, replay_of=replay_of)
    if len(parsed.jobs) > max_jobs:
        error = (
            f"the delivery lists {len(parsed.jobs)} jobs, more than the {max_jobs} one delivery"
            " may create (STEMHOOK_MAX_JOBS_PER_DELIVERY)"
        )
        return Intake(arrival=arrival, provider=parsed.provider, error=error, replay_of=replay_of)
    signed_timestamp, signed = None, False
    if parsed.provider is Provider.SUNO and suno_key is not None and polled is None:
        signed_at = (submission.signed_at or arrival.received_at).timestamp()
        _verify_suno(arrival, suno_key, [job.job_id for job in parsed.jobs], signed_at)
        signed_timestamp, signed = arrival.headers.get("x-webhook-timestamp"), True
    jobs, held = parsed.jobs, _NONE_HELD
    if polled is None and not signed and parsed.provider in confirm:
        jobs = tuple(job for job in parsed.jobs if not job.state.is_final)
        held = tuple(job for job in parsed.jobs if job.state.is_final)
    return Intake(
        arrival=arrival,
        provider=parsed.provider,
        jobs=jobs,
        replay_of=replay_of,
        signed_timestamp=signed_timestamp,
        held=held,
    )


def _parse(
    arrival: Arrival, expected: Provider | None, polled: Provider | None
) -> ParsedCallback | str:
    """The parsed callback or poll answer, or why the body cannot be one."""
    try:
        if polled is not None:
            return parse_poll_answer(
                arrival.body, content_type=arrival.content_type, provider=polled
            )
        return parse_callback(arrival.body, content_type=arrival.content_type, provider=expected)
    except ParseError as exc:
        return str(exc)
    except Exception as exc:  # whatever a parser raises, the body made it raise
        reason = f"unparseable body ({type(exc).__name__}: {exc})"[:_MAX_UNFORESEEN]
        log.warning("a parser raised %s on a delivery; rejecting it", type(exc).__name__)
        return reason


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

"""What the poller (app/polling/worker.py) and the queue lister (app/polling/lister.py) share
about a provider's answer: asking for it through the guarded fetcher, and storing it through the
write path as a delivery on the provider's poll endpoint.

What is stored is the answer (its body, and the headers a delivery keeps: app/headers.py), never
the request, which carries the credentials.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from app.fetching.errors import BadStatus, FetchError, Gone, Retryable
from app.fetching.fetcher import Answer, Fetcher
from app.headers import kept
from app.ingest.committer import Answer as Stored
from app.ingest.committer import Committer
from app.ingest.intake import Arrival, Outcome, Receipt, Submission
from app.ingest.turns import Turn
from app.polling.requests import PollRequest
from app.providers.model import Provider
from app.providers.registry import poll_endpoint

log = logging.getLogger(__name__)
USER_AGENT = "stemhook (poller)"
_NOT_STORED = "the answer could not be stored: {}"
# Only the exception's type: the text of one raised while sending may quote a request header.
_UNSENDABLE = "the request could not be sent ({})"


@dataclass(frozen=True, slots=True)
class Asked:
    """What sending a request came to: the answer (any 2xx), or the error and the Retry-After
    the provider asked for."""

    answer: Answer | None = None
    error: str | None = None
    retry_after_s: float | None = None


def ask(fetcher: Fetcher, request: PollRequest) -> Asked:
    """Send `request` (on any thread; no database)."""
    headers = request.headers | {"User-Agent": USER_AGENT}
    try:
        answer = fetcher.exchange(request.method, request.url, headers, request.body)
    except Retryable as error:
        return Asked(error=str(error), retry_after_s=error.retry_after_s)
    except (BadStatus, Gone) as error:  # the fetch's words are a file's ("gone")
        return Asked(error=_refused(error.status, request.url))
    except FetchError as error:
        return Asked(error=str(error))
    except Exception as error:  # noqa: BLE001 - its text may quote a credential
        host = urlsplit(request.url).hostname
        log.warning("poll: a request to %s raised %s", host, type(error).__name__)
        return Asked(error=_UNSENDABLE.format(type(error).__name__))
    return Asked(answer=answer)


def submission(answer: Answer, provider: Provider, *, at: datetime) -> Submission:
    """`answer` as a delivery received `at` on `provider`'s poll endpoint."""
    arrival = Arrival(
        received_at=at,
        endpoint=poll_endpoint(provider),
        content_type=answer.content_type,
        client_addr=None,
        headers={name: value for name, value in answer.headers.items() if kept(name)},
        body=answer.body,
    )
    return Submission(arrival=arrival, expected=provider)


def store(
    committer: Committer, submissions: Sequence[Submission], *, timeout_s: float
) -> dict[int, Stored]:
    """The submissions stored through `committer` in the writers' turn (on SQLite), within
    `timeout_s`: each one's receipt, or the exception it failed with, by its index."""
    until = time.monotonic() + timeout_s
    answers: dict[int, Stored] = {}
    try:
        with committer.turn(until=until, patient=True) as turn:
            if turn is Turn.MISSED:
                raise TimeoutError("the database stayed busy with writers")
            for group in committer.commit(list(submissions), deadlines=[until] * len(submissions)):
                answers.update(group)
    except Exception as error:  # the caller keeps it as its error and tries again later
        log.exception("storing %d answers failed", len(submissions))
        failed = RuntimeError(f"{type(error).__name__}: {error}")
        answers = dict.fromkeys(range(len(submissions)), failed) | answers
    return answers


def stored_error(stored: Stored) -> str | None:
    """Why a stored answer gave no job (rejected, orphaned), or why it was not stored; None
    for an answer merged (accepted or duplicate)."""
    if isinstance(stored, BaseException):
        return _NOT_STORED.format(stored)
    if stored.outcome in (Outcome.ACCEPTED, Outcome.DUPLICATE):
        return None
    return stored.error or f"the answer was {stored.outcome.value}"


def finishes(receipt: Receipt) -> bool:
    """Whether the stored answer made one of its jobs final."""
    return any(job.state.is_final and not job.duplicate for job in receipt.jobs)


def _refused(status: int, url: str) -> str:
    answered = f"HTTP {status} from {urlsplit(url).hostname}"
    return f"{answered}: the credentials were refused" if status in (401, 403) else answered

"""What a watch becomes after its poller held it: pure, the time an argument.

- Its job is final already: done, no poll.
- Its provider has no credentials: left as it is, looked at again `STEMHOOK_POLL_AFTER` later (so
  credentials configured later find it), no poll counted; given up at its give-up time.
- Waiting for its first poll, and a delivery spoke of its job less than `STEMHOOK_POLL_AFTER`
  ago: put off until that long after it (no poll counted). Not a watch made due on purpose
  (`POST .../poll`, a callback's claim held for confirmation), whose status says `polling`.
- Polled: one more poll, the error if it failed (an HTTP failure, or an answer the parsers
  reject), next polled after a backoff from 30 s doubling to 30 min (with jitter: the watches of
  many jobs registered together, or due together after an outage, spread out rather than ask a
  provider all at once), or later if the provider said so (Retry-After); given up once that next
  time is past its give-up time.
- Not asked (no request could be made, e.g. a CI job in a bucket the keys may not read): the
  reason as its error, looked at again after the same backoff, no poll counted.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app.fetching.errors import retry_wait
from app.polling.watches import WatchStatus
from app.work.queue import backoff

# The Suno callback document's advice (poll every 30 s), and no less often than twice an hour.
RETRY_BASE = timedelta(seconds=30)
RETRY_CAP = timedelta(minutes=30)


@dataclass(frozen=True, slots=True)
class Held:
    """A claimed watch's queue state: polls and claims so far, and when it is given up."""

    polls: int
    attempts: int
    give_up_at: datetime


Settled = tuple[dict[str, Any], datetime | None]


def finished() -> Settled:
    return {"status": WatchStatus.DONE.value}, None


def not_configured(now: datetime, *, poll_after: timedelta, give_up_at: datetime) -> Settled:
    """Looked at again later, or given up at its give-up time like any watch."""
    if now >= give_up_at:
        return {"status": WatchStatus.GAVE_UP.value}, None
    return {}, min(now + poll_after, give_up_at)


def heard_of_lately(row: Any, job: Any, now: datetime, poll_after: timedelta) -> Settled | None:
    """A watch waiting for its first poll whose job a delivery spoke of less than `poll_after`
    ago is put off until `poll_after` after that delivery (a poll is for a job last heard of
    that long ago); None: poll it now. A registered job's own delay counts until its first
    delivery; a watch made due on purpose (`polling`) is polled now."""
    if row.status != WatchStatus.WAITING or row.polls > 0 or job.deliveries == 0:
        return None
    due = job.last_received_at + poll_after
    if due <= now or due > row.give_up_at:  # past its give-up time: polled once, then given up
        return None
    return {}, due


def after_poll(
    held: Held,
    *,
    now: datetime,
    error: str | None,
    retry_after_s: float | None = None,
    asked: bool = True,
    rng: random.Random | None = None,
) -> Settled:
    """The values of a watch whose provider was `asked` at `now` (or could not be), and when it
    is due again (None: given up)."""
    tries = held.polls + 1 if asked else held.attempts
    wait = retry_wait(backoff(tries, base=RETRY_BASE, cap=RETRY_CAP, rng=rng), retry_after_s)
    due = now + wait
    values: dict[str, Any] = {"last_error": error, "status": WatchStatus.POLLING.value}
    if asked:
        values |= {"polls": held.polls + 1, "last_polled_at": now}
    if due > held.give_up_at:
        return values | {"status": WatchStatus.GAVE_UP.value}, None
    return values, due

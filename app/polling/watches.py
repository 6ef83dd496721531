"""Which jobs stemhook watches, and what their watch says: pure, like app/mirror/sources.py.

A job first heard of unfinished (a callback saying submitted or running, or a registration by
`PUT .../expect`) gets a watch row in the transaction that creates it, due for its first poll
`STEMHOOK_POLL_AFTER` after it was heard of and given up `STEMHOOK_POLL_GIVE_UP_AFTER` after.
The delivery that makes the job final ends the watch in its own transaction. A job that arrives
final is never watched, unless an unsigned callback says so where its provider's word is needed
(STEMHOOK_CONFIRM_BY_POLL): its watch is then due at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from app.providers.model import Provider, State


class WatchStatus(StrEnum):
    """What the API shows as `watch.status`."""

    IDLE = "idle"  # the job arrived final: there was nothing to watch
    WAITING = "waiting"  # unfinished, its callback not yet overdue
    POLLING = "polling"  # overdue: its provider is asked, with backoff
    DONE = "done"  # it became final while watched (by a callback or a poll)
    GAVE_UP = "gave_up"  # still unfinished when its give-up time passed: no more polls
    NOT_CONFIGURED = "not_configured"  # unfinished, and its provider has no credentials to poll


@dataclass(frozen=True, slots=True)
class WatchPolicy:
    """`poll_after`: STEMHOOK_POLL_AFTER; `give_up_after`: STEMHOOK_POLL_GIVE_UP_AFTER."""

    poll_after: timedelta
    give_up_after: timedelta

    def watch_row(
        self,
        *,
        job_pk: int,
        provider: Provider,
        heard_at: datetime,
        poll_after: timedelta | None = None,
        give_up_after: timedelta | None = None,
    ) -> dict[str, Any]:
        """The job_watch row of a job first heard of unfinished at `heard_at`; a registration
        may choose its own delays."""
        return {
            "job_pk": job_pk,
            "provider": provider.value,
            "status": WatchStatus.WAITING.value,
            "run_after": heard_at + (self.poll_after if poll_after is None else poll_after),
            "give_up_at": heard_at
            + (self.give_up_after if give_up_after is None else give_up_after),
        }

    def claimed_row(self, *, job_pk: int, provider: Provider, at: datetime) -> dict[str, Any]:
        """The watch of an unfinished job whose final state a callback received `at` claims,
        unconfirmed (STEMHOOK_CONFIRM_BY_POLL): polled now, given up as any watch; for a job
        with a watch already, what it is made (app/ingest/statements.py, due_watch)."""
        due = self.watch_row(job_pk=job_pk, provider=provider, heard_at=at, poll_after=timedelta())
        return due | {"status": WatchStatus.POLLING.value}


DEFAULT_WATCH = WatchPolicy(poll_after=timedelta(minutes=10), give_up_after=timedelta(hours=48))


def watch_status(state: State, stored: str | None, *, configured: bool) -> WatchStatus:
    """The status the API shows for a job in `state` whose watch row says `stored` (None: no
    row), its provider `configured` to be polled or not."""
    if stored is None:  # created final: never watched
        return WatchStatus.IDLE
    if state.is_final:
        return WatchStatus.DONE
    status = WatchStatus(stored)
    if not configured and status in (WatchStatus.WAITING, WatchStatus.POLLING):
        return WatchStatus.NOT_CONFIGURED
    return status

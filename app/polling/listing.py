"""Listing Tencent CI's queues (STEMHOOK_CI_QUEUES) for the jobs nobody registered and whose
callback never came: pure, the time an argument.

A queue is listed window after window of creation time, oldest first, each at most `every` long
(STEMHOOK_POLL_AFTER) and listed only once it lies LAG in the past (CI lists a job by the time
its own clock gave it, which may be behind ours); within a window page after page (NextToken),
each page listing jobs a delivery on the poll endpoint. The queue's `ci_listing` row keeps how
far the listing got, so a restart, or another process, goes on from there. A first listing
starts `lookback` (STEMHOOK_POLL_GIVE_UP_AFTER) before its first window closes: older jobs would
not be polled either. After a window the next is due once it has closed, at once while catching
up (docs/decisions/0019-listing-ci-queues-and-confirming-callbacks.md).

Each job needs to be seen once: one listed unfinished is watched from then on (the write path
gives a job first heard of unfinished its watch, app/polling/watches.py), one listed final is
recorded, and a job stemhook knew merges as a callback would.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app.fetching.errors import retry_wait
from app.polling.schedule import RETRY_BASE, RETRY_CAP, Settled
from app.work.queue import backoff

# A job CI created this long ago is listed by now, however far CI's clock is behind ours (COS
# itself tolerates a minute: app/mirror/cos.py CLOCK_SKEW_S).
LAG = timedelta(minutes=1)
# DescribeMediaJobs answers at most this many jobs a page.
MOST_PER_PAGE = 100
# A window of more pages is cut there, and its error says so: an answer that always names a
# next page must not keep a lister asking at once forever (50,000 jobs in one window).
MAX_PAGES = 500
CUT = "the window of jobs created {start} to {end} was cut after {pages} pages"


@dataclass(frozen=True, slots=True)
class Listing:
    """A claimed listing row: how far it got, and the claims since it last listed a page."""

    listed_to: datetime | None = None
    window_end: datetime | None = None
    next_token: str | None = None
    pages: int = 0
    attempts: int = 1


@dataclass(frozen=True, slots=True)
class Window:
    """The jobs created from `start` to `end` (whole seconds), and the page to ask for: the
    first (no token), or the one `next_token` names after `pages` pages."""

    start: datetime
    end: datetime
    next_token: str | None = None
    pages: int = 0


def window(
    listing: Listing, *, now: datetime, every: timedelta, lookback: timedelta
) -> Window | None:
    """What to list next at `now`: the window being paged through, or the next one that has
    closed; None while none has."""
    if listing.window_end is not None and listing.listed_to is not None:
        return Window(listing.listed_to, listing.window_end, listing.next_token, listing.pages)
    closed = _whole_seconds(now - LAG)
    start = listing.listed_to or closed - lookback
    end = min(start + every, closed)
    return Window(start, end) if end > start else None


def listed(window: Window, *, next_token: str | None, now: datetime, every: timedelta) -> Settled:
    """The row after a page of `window` was listed at `now` (and stored, if it had jobs): the
    next page due at once, or the window done and the next due once it closes."""
    values: dict[str, Any] = {"last_listed_at": now, "last_error": None, "attempts": 0}
    pages = window.pages + 1
    if next_token is not None and pages < MAX_PAGES:
        page = {"window_end": window.end, "next_token": next_token, "pages": pages}
        return values | page | {"listed_to": window.start}, now
    if next_token is not None:
        values["last_error"] = CUT.format(start=window.start, end=window.end, pages=pages)
    done = {"listed_to": window.end, "window_end": None, "next_token": None, "pages": 0}
    return values | done, not_yet(window.end, now=now, every=every)[1]


def not_yet(listed_to: datetime, *, now: datetime, every: timedelta) -> Settled:
    """The row unchanged, due when the window after `listed_to` closes."""
    return {}, max(now, listed_to + every + LAG)


def failed(
    listing: Listing,
    window: Window,
    *,
    now: datetime,
    error: str,
    retry_after_s: float | None = None,
    rng: random.Random | None = None,
) -> Settled:
    """The row after a page of `window` could not be listed or stored: with the error, the
    same page due again after the pollers' backoff (or the provider's Retry-After); a first
    listing keeps the window it began (a later one would start later)."""
    wait = backoff(listing.attempts, base=RETRY_BASE, cap=RETRY_CAP, rng=rng)
    return {"last_error": error, "listed_to": window.start}, now + retry_wait(wait, retry_after_s)


def _whole_seconds(at: datetime) -> datetime:
    return at.replace(microsecond=0)

"""Why a fetch failed, in the classes the queue acts on.

    FetchError
    ├── PermanentFetchError   retrying cannot help: the file is failed with the error's text
    │   ├── Refused           the URL, an address it resolves to or its redirects may not be
    │   │                     fetched ("refused: 127.0.0.2 is a loopback address")
    │   ├── TooLarge          the body is, or grew, over STEMHOOK_FETCH_MAX_BYTES
    │   ├── BadStatus         an answer that is none of 200, a redirect, or the ones below
    │   └── Encoded           a 200 whose body is content-encoded (gzip, ...), though the
    │                         fetch asked for the file as it is
    ├── Gone                  403, 404, 410: confirmed by one short retry, then failed
    └── Retryable             no answer in time, a connection, TLS or protocol failure, 408,
                              429, 5xx; `retry_after_s` when the server said when to come back

The text never holds the URL's path or query, which may carry a signature, nor its userinfo.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

_DELAY_SECONDS = re.compile(r"[0-9]+")
# A server may ask for a later retry, but not for one beyond this.
MAX_RETRY_AFTER = timedelta(hours=1)


class FetchError(Exception):
    """A fetch that did not deliver the whole body; str() says why."""


class PermanentFetchError(FetchError):
    """The same fetch would fail the same way."""


class Refused(PermanentFetchError):
    """Not fetched on purpose: scheme, userinfo, an address the guard refuses, or redirects."""


class TooLarge(PermanentFetchError):
    """Over the size cap, announced by Content-Length or counted while streaming."""


class BadStatus(PermanentFetchError):
    """An answer that is no file and no reason to come back (400, 401, 451, 204, 300, ...)."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class Encoded(PermanentFetchError):
    """The server compressed the body though asked not to: stored, those bytes would be served
    as the file itself."""


class Gone(FetchError):
    """The server says the file is not (or no longer) there: 403, 404 or 410."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class Retryable(FetchError):
    """A failure that may pass: `retry_after_s` is the server's Retry-After, when it sent one."""

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header ("120" or an HTTP-date), None if unusable.

    A date in the past means now (0); the caller bounds a long wait with its own backoff.
    """
    if value is None:
        return None
    value = value.strip()
    if _DELAY_SECONDS.fullmatch(value):
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    # An HTTP-date is in GMT; one written with "-0000" parses as naive.
    aware = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    return max(0.0, (aware - now).total_seconds())


def retry_wait(backoff: timedelta, retry_after_s: float | None) -> timedelta:
    """How long to wait before trying again: the backoff, or the server's Retry-After when it
    asks for longer (up to MAX_RETRY_AFTER)."""
    if retry_after_s is None or not math.isfinite(retry_after_s):
        return backoff
    asked = timedelta(seconds=min(retry_after_s, MAX_RETRY_AFTER.total_seconds()))
    return max(backoff, asked)

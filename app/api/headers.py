"""Which request headers a delivery keeps, and which of those the API shows.

Kept by allowlist, not blocklist: what describes the request (its content, the sender's software,
the proxies it passed, a request id) and the providers' own headers (Suno's x-webhook-*). Any
other header may carry a credential of a scheme no list of credential names foresaw.

Of the kept ones, the API shows none whose name says it is a credential: Suno's signature is
stored because a replay checks it again (app/ingest/admission.py), but within its freshness
window it vouches for any body under the same task id, so whoever reads it could forge with it.
Deliveries stored before the allowlist kept more: the API filters them by the same rules.
"""

from __future__ import annotations

from collections.abc import Mapping

KEPT = frozenset(
    {
        "content-type",
        "content-length",
        "content-encoding",
        "user-agent",
        "host",
        "forwarded",
        "via",
        "x-real-ip",
        "x-request-id",
        "x-correlation-id",
    }
)
KEPT_PREFIXES = ("x-webhook-", "x-forwarded-")
_CREDENTIAL_WORDS = ("signature", "token", "secret", "auth", "key", "password", "cookie")


def kept(name: str) -> bool:
    """Whether a header (its name lower-case, as ASGI gives it) is stored with the delivery."""
    return name in KEPT or name.startswith(KEPT_PREFIXES)


def shown(headers: Mapping[str, str]) -> dict[str, str]:
    """The stored headers the API may return: kept ones that are no credential."""
    return {
        name: value
        for name, value in headers.items()
        if kept(name) and not any(word in name for word in _CREDENTIAL_WORDS)
    }

"""Which request headers a delivery keeps, and which of those the API shows.

Kept by allowlist, not blocklist: what describes the request (its content, the sender's software,
the proxies it passed, a request id) and the providers' own headers (Suno's x-webhook-*). Any
other header may carry a credential of a scheme no list of credential names foresaw.

The API shows an allowlist too, narrower: the descriptive headers above and the provider headers
known to carry no secret. Suno's signature is stored because a replay checks it again
(app/ingest/admission.py), but it vouches for a body under its task id, so whoever reads it could
forge with it; an unknown `x-webhook-*` header may be a provider's credential of another name.
Deliveries stored before the allowlist kept more: the API filters them by the same rule.
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
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-forwarded-port",
        "x-forwarded-prefix",
        "x-request-id",
        "x-correlation-id",
    }
)
# Providers' own headers: stored whole, since a replay may need any of them.
KEPT_PREFIX = "x-webhook-"
# The provider headers the API shows: none of them vouches for a body.
SHOWN_PROVIDER_HEADERS = frozenset({"x-webhook-timestamp", "x-webhook-id", "x-webhook-event"})


def kept(name: str) -> bool:
    """Whether a header (its name lower-case, as ASGI gives it) is stored with the delivery."""
    return name in KEPT or name.startswith(KEPT_PREFIX)


def shown(headers: Mapping[str, str]) -> dict[str, str]:
    """The stored headers the API may return: the descriptive ones and the harmless provider
    ones, whatever an older delivery kept."""
    return {
        name: value
        for name, value in headers.items()
        if name in KEPT or name in SHOWN_PROVIDER_HEADERS
    }

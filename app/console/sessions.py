"""Console sessions and CSRF tokens, kept in a signed cookie and nowhere else
(docs/decisions/0018-console-sessions-in-a-signed-cookie.md).

A session is {fingerprint of the API token signed in with, issued at, expires at, nonce}, signed
with a key derived from that token. Nothing is stored on the server: a session is valid while
its token is in STEMHOOK_API_TOKENS and it has not expired, so removing a token ends every
session signed in with it. The CSRF token of a form is derived from the session's key and
nonce, so it is valid for that session only.

Pure: no clock (times are passed in), no I/O, no web framework.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import orjson
from pydantic import SecretStr

from app.tokens import matching_token

COOKIE = "stemhook_console"
# Absolute: a session ends this long after sign-in, however busy (record 18).
LIFETIME = timedelta(hours=12)
_KEY_LABEL = b"stemhook console session key"
_FINGERPRINT_LABEL = b"stemhook console token fingerprint"
_CSRF_LABEL = b"stemhook console csrf:"


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    fingerprint: str
    issued_at: int
    expires_at: int
    nonce: str
    key: bytes

    @property
    def csrf(self) -> str:
        """The token every state-changing form of this session carries."""
        return _b64(hmac.digest(self.key, _CSRF_LABEL + self.nonce.encode(), hashlib.sha256))

    def cookie(self) -> str:
        payload = _b64(
            orjson.dumps(
                {"f": self.fingerprint, "i": self.issued_at, "e": self.expires_at, "n": self.nonce}
            )
        )
        return f"{payload}.{_mac(self.key, payload)}"


def issue(token: bytes, *, now: datetime) -> ConsoleSession:
    issued = int(now.timestamp())
    return ConsoleSession(
        fingerprint=_fingerprint(token),
        issued_at=issued,
        expires_at=issued + int(LIFETIME.total_seconds()),
        nonce=secrets.token_urlsafe(16),
        key=_key(token),
    )


def verify(cookie: str, tokens: Sequence[SecretStr], *, now: datetime) -> ConsoleSession | None:
    """The session a cookie carries, or None: malformed, forged, expired, or signed in with a
    token no longer configured."""
    payload, dot, mac = cookie.partition(".")
    if not dot:
        return None
    try:
        fields = orjson.loads(_unb64(payload))
    except (binascii.Error, ValueError):
        return None
    if not isinstance(fields, dict) or fields.keys() != {"f", "i", "e", "n"}:
        return None
    fingerprint, issued, expires, nonce = fields["f"], fields["i"], fields["e"], fields["n"]
    if not (
        isinstance(fingerprint, str)
        and isinstance(nonce, str)
        and isinstance(issued, int)
        and isinstance(expires, int)
    ):
        return None
    token = matching_token(fingerprint, tokens, named_by=lambda t: _fingerprint(t).encode())
    if token is None:
        return None
    key = _key(token)
    # As bytes: a cookie is whatever the client sends, and str comparison refuses non-ASCII.
    if not hmac.compare_digest(mac.encode(), _mac(key, payload).encode()):
        return None
    moment = now.timestamp()
    if not issued - 60 <= moment < expires or expires - issued > LIFETIME.total_seconds():
        return None
    return ConsoleSession(fingerprint, issued, expires, nonce, key)


def csrf_matches(given: str | None, session: ConsoleSession) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), session.csrf.encode())


def same_origin(*, origin: str | None, referer: str | None, own: str) -> bool:
    """Whether a form was posted from a page of this origin (`own`: scheme://host[:port]):
    its Origin header says so, or without one its Referer does. Neither is refused (every
    browser that honours SameSite sends Origin with a form's POST), and so is an opaque
    origin ("null": a sandboxed frame, a privacy-sensitive redirect)."""
    if origin is None:
        if referer is None:
            return False
        parts = urlsplit(referer)
        origin = f"{parts.scheme}://{parts.netloc}"
    return origin.lower() == own.lower()


def _key(token: bytes) -> bytes:
    return hmac.digest(token, _KEY_LABEL, hashlib.sha256)


def _fingerprint(token: bytes) -> str:
    """Names the token without revealing anything of it (a keyed hash, cut short)."""
    return hmac.digest(token, _FINGERPRINT_LABEL, hashlib.sha256)[:12].hex()


def _mac(key: bytes, payload: str) -> str:
    return _b64(hmac.digest(key, payload.encode(), hashlib.sha256))


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))

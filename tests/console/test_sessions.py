"""Console sessions in a signed cookie: what verifies, and everything that must not."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from pydantic import SecretStr

from app.console.sessions import LIFETIME, csrf_matches, issue, same_origin, verify

TOKEN = "first-token-0123456789"
OTHER = "other-token-0123456789"
TOKENS = (SecretStr(TOKEN), SecretStr(OTHER))
NOW = datetime(2026, 12, 8, 9, 30, tzinfo=UTC)


def test_a_session_verifies_while_its_token_is_configured_and_it_has_not_expired() -> None:
    session = issue(TOKEN.encode(), now=NOW)

    assert verify(session.cookie(), TOKENS, now=NOW + LIFETIME / 2) == session
    assert verify(session.cookie(), TOKENS, now=NOW + LIFETIME) is None
    assert verify(session.cookie(), (SecretStr(OTHER),), now=NOW) is None


def test_the_cookie_names_its_token_without_revealing_it() -> None:
    cookie = issue(TOKEN.encode(), now=NOW).cookie()

    assert TOKEN not in cookie
    assert TOKEN.encode() not in _payload(cookie).encode()


def _payload(cookie: str) -> str:
    text = cookie.split(".")[0]
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()


def _forged(cookie: str, **changes: object) -> str:
    fields = orjson.loads(_payload(cookie)) | changes
    payload = base64.urlsafe_b64encode(orjson.dumps(fields)).decode().rstrip("=")
    return f"{payload}.{cookie.split('.')[1]}"


@pytest.mark.parametrize(
    "tamper",
    [
        lambda cookie: _forged(cookie, e=2**40),  # a later expiry
        lambda cookie: _forged(cookie, n="another"),
        lambda cookie: cookie[:-2] + ("AA" if not cookie.endswith("AA") else "BB"),
        lambda cookie: cookie.split(".")[0],
        lambda cookie: "not.base64!",
        lambda cookie: "",
    ],
)
def test_a_changed_or_malformed_cookie_is_refused(tamper: object) -> None:
    cookie = issue(TOKEN.encode(), now=NOW).cookie()

    assert callable(tamper)
    assert verify(tamper(cookie), TOKENS, now=NOW) is None


def test_a_session_signed_with_another_tokens_key_is_refused() -> None:
    mine, theirs = issue(TOKEN.encode(), now=NOW), issue(OTHER.encode(), now=NOW)
    # Its payload names the first token, its signature is the other's key's.
    spliced = f"{mine.cookie().split('.')[0]}.{theirs.cookie().split('.')[1]}"

    assert verify(spliced, TOKENS, now=NOW) is None


def test_the_csrf_token_is_the_sessions_own() -> None:
    first, second = issue(TOKEN.encode(), now=NOW), issue(TOKEN.encode(), now=NOW)

    assert csrf_matches(first.csrf, first)
    assert not csrf_matches(second.csrf, first)
    assert not csrf_matches(None, first)
    assert not csrf_matches("", first)


@pytest.mark.parametrize(
    ("origin", "referer", "expected"),
    [
        ("https://console.example", None, True),
        ("HTTPS://Console.Example", None, True),
        ("https://console.example:8443", None, False),
        ("http://console.example", None, False),
        ("https://evil.example", "https://console.example/ui/", False),
        (None, "https://console.example/ui/jobs?x=1", True),
        ("null", "https://console.example/ui/", False),
        (None, "https://evil.example/ui/", False),
        (None, None, False),
        ("null", None, False),
    ],
)
def test_a_form_is_from_this_origin_only_when_its_origin_or_referer_says_so(
    origin: str | None, referer: str | None, expected: bool
) -> None:
    own = "https://console.example"

    assert same_origin(origin=origin, referer=referer, own=own) is expected


def test_a_session_issued_in_the_future_is_refused() -> None:
    session = issue(TOKEN.encode(), now=NOW + timedelta(hours=1))

    assert verify(session.cookie(), TOKENS, now=NOW) is None

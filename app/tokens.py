"""The API tokens (STEMHOOK_API_TOKENS): which configured one a caller named, found in constant
time. The /v1 bearer check, the console's sign-in and its sessions all go through it."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence

from pydantic import SecretStr


def matching_token(
    given: str, tokens: Sequence[SecretStr], *, named_by: Callable[[bytes], bytes] = bytes
) -> bytes | None:
    """The configured token whose name (`named_by` it: the token itself, or a fingerprint of
    it) is `given`. Every token is compared, each in constant time, so that the time taken does
    not reveal which one nearly matched."""
    offered = given.encode()
    found: bytes | None = None
    for token in tokens:
        candidate = token.get_secret_value().encode()
        if hmac.compare_digest(offered, named_by(candidate)):
            found = candidate
    return found

"""Reading single values out of decoded callbacks, whichever way the sender spelled them.

XML turns everything into text, a repeated element into a list but a single one into a plain
value, and an empty element into None; JSON senders put numbers in strings. Identity and state
fields are read strictly (a wrong type is a ParseError); descriptive ones such as media
measurements leniently (unreadable means unknown).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from app.providers.model import ParseError

_CHINA_STANDARD_TIME = timezone(timedelta(hours=8))
_NO_TIME = frozenset({"", "-", "0"})
_CAMEL_WORD = re.compile(r"(.)([A-Z][a-z]+)")
_CAMEL_TAIL = re.compile(r"([a-z0-9])([A-Z])")
_TAG = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
# Tuples, not `int | float`: a union in isinstance is built on every call (~4x the check's cost),
# and these checks run for most fields of every payload.
_NUMBERS = (int, float)
_NUMBERS_OR_TEXT = (str, int, float)


def as_list(value: Any) -> list[Any]:
    """A repeated element as a list, whether it arrived once, several times or not at all."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    return [value]


def mapping(value: Any, what: str) -> Mapping[str, Any]:
    """A container element; an empty XML element or a missing one reads as empty."""
    if type(value) is dict:  # what both decoders build, checked before the slower ABC check
        return value
    if value is None or value == "":
        return {}
    if isinstance(value, Mapping):
        return value
    raise ParseError(f"{what} must be an object, got {type(value).__name__}")


def text(value: Any, what: str) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        if "\x00" in value:
            raise ParseError(f"{what} contains a NUL character")
        return value
    if isinstance(value, bool):
        raise ParseError(f"{what} must be text, got a boolean")
    if isinstance(value, _NUMBERS):
        return str(value)
    raise ParseError(f"{what} must be text, got {type(value).__name__}")


def required_text(value: Any, what: str) -> str:
    result = text(value, what)
    if result is None or not result.strip():
        raise ParseError(f"{what} is missing")
    return result


def number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, _NUMBERS_OR_TEXT):
        return None
    try:
        result = float(value)
    except (ValueError, OverflowError):
        return None
    return result if math.isfinite(result) else None


_INT64 = 2**63


def integer(value: Any) -> int | None:
    """A whole number a database column can hold (64 bits); anything else is unknown."""
    if type(value) is int:  # JSON's integers: exact, and not through a float
        return value if -_INT64 <= value < _INT64 else None
    result = number(value)
    if result is None or not result.is_integer() or not -_INT64 <= result < _INT64:
        return None
    return int(result)


def ci_time(value: Any, what: str) -> datetime | None:
    """A CI time such as "2022-07-01T10:12:26+0800" or "2022-08-09 14:54:17+0800", in UTC.

    "-" and "" mean not yet; a time without an offset is China Standard Time, where CI runs.
    """
    raw = text(value, what)
    if raw is None or raw.strip() in _NO_TIME:
        return None
    try:
        parsed = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise ParseError(f"{what} is not a time: {raw!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=_CHINA_STANDARD_TIME)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        # Year 1 or 9999 times can be read but not shifted to UTC: datetime's range ends there.
        raise ParseError(f"{what} is out of range: {raw!r}") from None


def epoch_ms(value: Any, what: str) -> datetime | None:
    """An epoch-millisecond time ("1603432763000" or a number) in UTC; 0 means not yet."""
    raw = text(value, what)
    if raw is None or raw.strip() in _NO_TIME:
        return None
    try:
        return datetime.fromtimestamp(int(raw.strip()) / 1000, tz=UTC)
    except (ValueError, OverflowError, OSError):
        raise ParseError(f"{what} is not an epoch-millisecond time: {raw!r}") from None


def snake_case(tag: str) -> str:
    """A CI Tag as a job kind: "SpeechRecognition" -> "speech_recognition"."""
    if not _TAG.fullmatch(tag):
        raise ParseError(f"Tag {tag[:80]!r} is not a CI task tag")
    return camel_to_snake(tag)


def camel_to_snake(name: str) -> str:
    """A camelCase name in snake case, unchecked: "backingVocalsUrl" -> "backing_vocals_url"."""
    return _CAMEL_TAIL.sub(r"\1_\2", _CAMEL_WORD.sub(r"\1_\2", name)).lower()


def object_key(value: Any, what: str) -> str | None:
    """A COS object name without the leading "/" some callbacks put in front of it."""
    name = text(value, what)
    if name is None:
        return None
    return name.lstrip("/") or None

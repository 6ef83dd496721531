"""Suno-style vocal removal: `{code, msg, data: {task_id, vocal_removal_info}}`.

One body shape serves `separate_vocal` and `split_stem`; only the URL keys present tell them
apart. The code is the job's outcome (200 succeeded, anything else failed) and the result URLs
expire, so each one is kept as given. The sender retries, so one task may arrive several times.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Container, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from app.providers.decode import Document, Format
from app.providers.fields import mapping, required_text, text
from app.providers.model import Job, JobError, OutputFile, ParseError, Provider, Role, State

SUCCESS = "200"
# Vendors of the same API name the result object either way.
_INFO_KEYS = ("vocal_removal_info", "vocal_separation_info")
_SPLIT_STEM_ROLES = {
    "backing_vocals_url": Role.BACKING_VOCALS,
    "drums_url": Role.DRUMS,
    "bass_url": Role.BASS,
    "guitar_url": Role.GUITAR,
    "keyboard_url": Role.KEYBOARD,
    "percussion_url": Role.PERCUSSION,
    "strings_url": Role.STRINGS,
    "synth_url": Role.SYNTH,
    "fx_url": Role.FX,
    "brass_url": Role.BRASS,
    "woodwinds_url": Role.WOODWINDS,
}
_URL_ROLES = {
    "instrumental_url": Role.ACCOMPANIMENT,
    "origin_url": Role.ORIGINAL,
    "vocal_url": Role.VOCALS,
    **_SPLIT_STEM_ROLES,
}


def recognizes(document: Document) -> bool:
    root = document.data
    if document.format is not Format.JSON or not isinstance(root, Mapping):
        return False
    data = root.get("data")
    return "code" in root and isinstance(data, Mapping) and "task_id" in data


def parse(document: Document) -> tuple[Job, ...]:
    root = mapping(document.data, "callback")
    data = mapping(root.get("data"), "data")
    job_id = required_text(data.get("task_id"), "data.task_id")
    code = status_code(root.get("code"))
    info_key, info = _info(data)
    succeeded = code == SUCCESS
    return (
        Job(
            provider=Provider.SUNO,
            job_id=job_id,
            kind=kind(info),
            state=State.SUCCEEDED if succeeded else State.FAILED,
            provider_state=code,
            error=None if succeeded else JobError(code=code, message=message(root)),
            outputs=tuple(_outputs(info, info_key)),
        ),
    )


def status_code(value: Any) -> str:
    """The status code as digits without leading zeros: 200 and "200" are the same code."""
    raw = required_text(value, "code")
    if not (raw.isascii() and raw.isdigit()):
        raise ParseError(f"code {raw[:80]!r} is not a numeric status code")
    return raw.lstrip("0") or "0"


def message(root: Mapping[str, Any]) -> str:
    return text(root.get("msg"), "msg") or ""


def _info(data: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    # A failure keeps the task id with the result object null.
    for key in _INFO_KEYS:
        if data.get(key) is not None:
            return f"data.{key}", mapping(data[key], f"data.{key}")
    return f"data.{_INFO_KEYS[0]}", {}


def kind(url_keys: Container[str]) -> str:
    """The separation type, told by which snake-case URL keys its result has."""
    if "instrumental_url" in url_keys:
        return "separate_vocal"
    if any(key in url_keys for key in _SPLIT_STEM_ROLES):
        return "split_stem"
    return "vocal_separation"


def _outputs(info: Mapping[str, Any], what: str) -> Iterator[OutputFile]:
    for key, value in info.items():
        if not key.endswith("_url"):
            continue
        if (file := output_file(key, value, f"{what}.{key}")) is not None:
            yield file


def output_file(url_key: str, value: Any, what: str) -> OutputFile | None:
    """The file a URL value names, its role told by the snake-case key; None when it has none."""
    if value is not None and not isinstance(value, str):
        raise ParseError(f"{what} must be a URL string, got {type(value).__name__}")
    # An empty string is how the sender says this stem has no file.
    url = text(value, what)
    if url is None:
        return None
    return OutputFile(role=_URL_ROLES.get(url_key, Role.OTHER), url=url, file_name=_file_name(url))


def _file_name(url: str) -> str | None:
    try:
        path = urlsplit(url).path
    except ValueError:
        return None
    return path.rsplit("/", 1)[-1] or None


def verify_signature(
    *,
    key: str,
    task_id: str,
    timestamp: str | None,
    signature: str | None,
    now: float,
    tolerance_s: float = 300,
) -> bool:
    """Whether `signature` is base64(HMAC-SHA256(key, f"{task_id}.{timestamp}")) and the
    timestamp (unix seconds) is within `tolerance_s` of `now`, so a replay soon goes stale."""
    if timestamp is None or signature is None or not _fresh(timestamp, now, tolerance_s):
        return False
    try:
        message = f"{task_id}.{timestamp}".encode()
        expected = base64.b64encode(hmac.digest(key.encode(), message, hashlib.sha256))
        given = signature.encode("ascii")
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(expected, given)


def _fresh(timestamp: str, now: float, tolerance_s: float) -> bool:
    if not (timestamp.isascii() and timestamp.isdigit()):
        return False
    # float(), unlike int(), has no digit limit: an absurdly long timestamp is just far away.
    return abs(float(timestamp) - now) <= tolerance_s

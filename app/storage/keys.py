"""Keys for stored files, made from what strangers send, and the check every store applies.

A key is a relative path of plain segments: each starts with a letter or digit and holds only
letters, digits, ".", "_" and "-". So no key is absolute, climbs with "..", hides a NUL or a
backslash, or names a writer's temporary (those begin with "."), on any filesystem or bucket.
"""

from __future__ import annotations

import hashlib
import re

from app.storage.store import UnsafeKey

MAX_KEY_LENGTH = 512
_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_PROVIDER = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
# Job ids used as they are: lowercase (two ids differing in case only would meet on a
# case-insensitive filesystem) and without "_", which marks the hashed form below.
_PLAIN_JOB_ID = re.compile(r"[a-z0-9][a-z0-9.-]{0,63}")
_UNSAFE_RUN = re.compile(r"[^a-z0-9]+")
_EXTENSION = re.compile(r"[a-z0-9]{1,10}")


def check_key(key: str) -> str:
    """The key itself when it is safe; UnsafeKey otherwise."""
    if len(key) > MAX_KEY_LENGTH:
        raise UnsafeKey(f"a key may have at most {MAX_KEY_LENGTH} characters")
    for segment in key.split("/"):
        if _SEGMENT.fullmatch(segment) is None:
            raise UnsafeKey(
                f"{key!r}: every part of a key starts with a letter or digit and holds only"
                " letters, digits, '.', '_' and '-' (128 at most)"
            )
    return key


def file_key(
    provider: str, job_id: str, index: int, role: str, name_hint: str, *, version: str = ""
) -> str:
    """`<provider>/<job>/<index>-<role>[.<version>].<ext>`, e.g. `suno/3f2a-77/0-vocals.mp3`.

    The job id is used as it is when it is short, lowercase and plain; any other becomes a
    readable slug and 32 hex digits of its SHA-256, so two different ids never share a key.
    The role is reduced to a slug (the index tells a job's files apart) and only the extension
    of `name_hint` (the provider's file name, or its URL's last path segment) is kept; `version`
    (letters and digits) tells apart copies of one file written by different attempts.
    """
    if _PROVIDER.fullmatch(provider) is None:
        raise ValueError(f"{provider!r} is not a provider name")
    if index < 0:
        raise ValueError("a file's index is not negative")
    name = f"{index}-{_slug(role, 32) or 'file'}"
    if version:
        if not version.isalnum() or not version.isascii() or len(version) > 32:
            raise ValueError(f"{version!r} is not a version (at most 32 letters and digits)")
        name = f"{name}.{version}"
    base, dot, extension = name_hint.rsplit("/", 1)[-1].rpartition(".")
    if base and dot and _EXTENSION.fullmatch(extension := extension.lower()):
        name = f"{name}.{extension}"
    return check_key(f"{provider}/{_job_segment(job_id)}/{name}")


def _job_segment(job_id: str) -> str:
    if _PLAIN_JOB_ID.fullmatch(job_id):
        return job_id
    digest = hashlib.sha256(job_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"{_slug(job_id, 32) or 'job'}_{digest}"


def _slug(text: str, length: int) -> str:
    return _UNSAFE_RUN.sub("-", text.lower()).strip("-")[:length].strip("-")

"""The one byte range of a Range header a stored file is served in (RFC 9110, section 14).

A browser's audio player asks for one range at a time ("bytes=0-", "bytes=1048576-"), and a
download manager may ask for a suffix ("bytes=-500"). Several ranges in one header would need a
multipart answer no player asks for: like a header that is not a byte range at all, it is
ignored and the whole file served, as RFC 9110 allows.
"""

from __future__ import annotations

import re

from app.errors import RangeNotSatisfiable

_ONE_RANGE = re.compile(r"bytes=(?:(\d{1,19})-(\d{0,19})|-(\d{1,19}))")


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """[start, end) of the file to send, or None for the whole file; RangeNotSatisfiable when
    the range lies wholly past its end."""
    if header is None:
        return None
    match = _ONE_RANGE.fullmatch(header.strip().replace(" ", ""))
    if match is None:
        return None
    first, last, suffix = match.groups()
    if suffix is not None:
        length = int(suffix)
        if length == 0 or size == 0:
            raise RangeNotSatisfiable(size)
        return max(0, size - length), size
    start = int(first)
    if last and int(last) < start:
        return None  # invalid: ignored, as RFC 9110 says
    if start >= size:
        raise RangeNotSatisfiable(size)
    end = size if not last else min(int(last) + 1, size)
    return start, end

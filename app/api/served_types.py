"""The Content-Type and Content-Disposition a stored file is served with: what its source sent,
only when that is one media type from a short list no browser renders as a page.

The source is a stranger's server, so its Content-Type is parsed strictly (RFC 9110: one
`type/subtype` of tokens, then parameters) and only its normalised essence may be served: a list
such as `audio/mpeg, text/html` is no media type, and browsers following the Fetch standard would
take its last one. The listed audio and video types play inline; the few other listed types
are downloaded, never displayed; anything else is an octet stream, downloaded too.
"""

from __future__ import annotations

import re
from typing import Final

OCTET_STREAM: Final = "application/octet-stream"
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_QUOTED = r'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*"'
# Possessive (`*+`): the spaces around a parameter's ";" can be split between two parameters in
# many ways, and a backtracking match of a hostile value would try every one (3^40 steps for a
# 131-character one), on the event loop. Possessive runs make the match linear.
_MEDIA_TYPE = re.compile(
    rf"[ \t]*+(?P<type>{_TOKEN})/(?P<subtype>{_TOKEN})"
    rf"(?:[ \t]*+;[ \t]*+(?:{_TOKEN}=(?:{_TOKEN}|{_QUOTED}))?)*+[ \t]*+"
)
# What audio players and video elements play; no XML-based type, which a browser might render.
_PLAYED = frozenset(
    {
        "audio/mpeg",
        "audio/mp3",
        "audio/mp4",
        "audio/aac",
        "audio/x-m4a",
        "audio/wav",
        "audio/wave",
        "audio/x-wav",
        "audio/flac",
        "audio/x-flac",
        "audio/ogg",
        "audio/opus",
        "audio/webm",
        "audio/aiff",
        "audio/x-aiff",
        "video/mp4",
        "video/webm",
        "video/ogg",
        "video/quicktime",
    }
)
_DOWNLOADED = frozenset(
    {"image/png", "image/jpeg", "image/gif", "image/webp", "text/plain", OCTET_STREAM}
)


def served_type(content_type: str | None) -> tuple[str, str]:
    """The media type to serve a file the source labelled `content_type` as, and its disposition
    (`inline` for audio and video, else `attachment`); unknown or unlisted types are octet
    streams."""
    match = _MEDIA_TYPE.fullmatch(content_type or "")
    if match is not None:
        essence = f"{match['type']}/{match['subtype']}".lower()
        if essence in _PLAYED:
            return essence, "inline"
        if essence in _DOWNLOADED:
            return essence, "attachment"
    return OCTET_STREAM, "attachment"

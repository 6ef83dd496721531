"""A stored file's Content-Type is served only as one listed media type's essence."""

from __future__ import annotations

import pytest

from app.api.served_types import served_type

OCTET = ("application/octet-stream", "attachment")


@pytest.mark.parametrize(
    ("sent", "served"),
    [
        ("audio/mpeg", ("audio/mpeg", "inline")),
        ("AUDIO/X-FLAC", ("audio/x-flac", "inline")),
        ("audio/wav; rate=44100", ("audio/wav", "inline")),
        (' audio/ogg ; codecs="opus, vorbis" ', ("audio/ogg", "inline")),
        ("audio/mpeg;", ("audio/mpeg", "inline")),
        ("video/mp4", ("video/mp4", "inline")),
        ("image/png", ("image/png", "attachment")),
        ("image/jpeg", ("image/jpeg", "attachment")),
        ("image/gif", ("image/gif", "attachment")),
        ("image/webp", ("image/webp", "attachment")),
        ("text/plain; charset=utf-8", ("text/plain", "attachment")),
        ("application/octet-stream", OCTET),
    ],
)
def test_a_listed_type_is_served_as_its_essence(sent: str, served: tuple[str, str]) -> None:
    assert served_type(sent) == served


@pytest.mark.parametrize(
    "sent",
    [
        None,
        "",
        "text/html",
        "image/svg+xml",
        "audio/x+xml",
        "video/svg+xml",
        "video/html",
        "application/xhtml+xml",
        "text/xml",
        "application/pdf",
        "image/pngx",
        # Lists: browsers take the last type.
        "audio/mpeg, text/html",
        "audio/mpeg,text/html",
        "image/png,image/svg+xml",
        "audio/mpeg; a=b, text/html",
        "video/x\tx, text/html",
        # Not one media type of tokens.
        "audio",
        "audio/",
        "/mpeg",
        "audio/mp eg",
        "audio/mpeg/x",
        "audio/mpeg\r\ntext/html",
        "audio/mpeg; a",
        'audio/mpeg; a="unterminated',
        "audio/mpég",
    ],
)
def test_anything_else_is_an_octet_stream_to_download(sent: str | None) -> None:
    assert served_type(sent) == OCTET

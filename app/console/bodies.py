"""A stored body as a person reads it: JSON indented, XML one element a line, anything else as
it came. XML is only cut into tags and text, never parsed: no entity, DTD or schema is read.

A body is whatever a stranger posted (up to STEMHOOK_MAX_BODY_BYTES), so showing it is bounded:
only bodies up to `MAX_PRETTY_BYTES` are reshaped, XML is cut in one pass (`str.find`, no
backtracking pattern), its indentation stops deepening at `MAX_DEPTH`, and a document whose
indented form would grow past `MAX_GROWTH` times the body (many tiny nested tags; orjson indents
254 levels deep), or that orjson cannot write (deeper still), is shown as it came.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass

import anyio.to_thread
import orjson

MAX_PRETTY_BYTES = 256 * 1024
MAX_DEPTH = 16
MAX_GROWTH = 4
# What opens a markup token, and what must close it (else the rest is text).
_CLOSERS = (("<!--", "-->"), ("<![CDATA[", "]]>"), ("<", ">"))


@dataclass(frozen=True, slots=True)
class Shown:
    text: str
    # "json", "xml", "text", or "base64" for bytes that are not UTF-8.
    form: str


async def shown_off_the_loop(body: bytes | None) -> Shown | None:
    """`shown_body` on a worker thread: a megabyte takes milliseconds the event loop owes the
    callbacks."""
    return None if body is None else await anyio.to_thread.run_sync(shown_body, body)


def shown_body(body: bytes) -> Shown:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return Shown(base64.b64encode(body).decode("ascii"), "base64")
    if len(body) > MAX_PRETTY_BYTES:
        return Shown(text, "text")
    try:
        indented = orjson.dumps(orjson.loads(body), option=orjson.OPT_INDENT_2).decode()
    except orjson.JSONDecodeError:
        pass
    except TypeError:  # nested deeper than orjson writes
        return Shown(text, "json")
    else:
        return Shown(indented if len(indented) <= MAX_GROWTH * len(body) else text, "json")
    if text.lstrip().startswith("<"):
        indented = indented_xml(text)
        return Shown(indented if len(indented) <= MAX_GROWTH * len(body) else text, "xml")
    return Shown(text, "text")


def indented_xml(text: str) -> str:
    """One element, comment or text a line, indented by depth (up to MAX_DEPTH); a leaf's text
    stays on its element's line."""
    tokens = [token.strip() for token in _xml_tokens(text) if token.strip()]
    lines: list[str] = []
    depth = 0
    index = 0
    while index < len(tokens):
        token = tokens[index]
        leaf = tokens[index + 1 : index + 3]
        indent = "  " * min(depth, MAX_DEPTH)
        if _opens(token) and len(leaf) == 2 and not leaf[0].startswith("<") and _closes(leaf[1]):
            lines.append(indent + token + leaf[0] + leaf[1])
            index += 3
            continue
        if _closes(token):
            depth = max(depth - 1, 0)
            indent = "  " * min(depth, MAX_DEPTH)
        lines.append(indent + token)
        if _opens(token):
            depth += 1
        index += 1
    return "\n".join(lines)


def _xml_tokens(text: str) -> Iterator[str]:
    """Tags, comments and CDATA sections, and the text between them, in one pass: a token whose
    closing marker never comes is text to the end."""
    start = 0
    while start < len(text):
        opening = text.find("<", start)
        if opening < 0:
            yield text[start:]
            return
        if opening > start:
            yield text[start:opening]
        opener, closer = next(pair for pair in _CLOSERS if text.startswith(pair[0], opening))
        end = text.find(closer, opening + len(opener))
        if end < 0:
            yield text[opening:]
            return
        start = end + len(closer)
        yield text[opening:start]


def _opens(token: str) -> bool:
    return token.startswith("<") and token[1:2] not in ("/", "?", "!") and not token.endswith("/>")


def _closes(token: str) -> bool:
    return token.startswith("</")

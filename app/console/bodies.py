"""A stored body as a person reads it: JSON indented, XML one element a line, anything else as
it came. XML is only cut into tags and text, never parsed: no entity, DTD or schema is read."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

import orjson

# Tags, comments, CDATA sections and processing instructions, and the text between them.
_XML_TOKEN = re.compile(r"<!--.*?-->|<!\[CDATA\[.*?\]\]>|<[?!][^>]*>|<[^>]+>|[^<]+", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Shown:
    text: str
    # "json", "xml", "text", or "base64" for bytes that are not UTF-8.
    form: str


def shown_body(body: bytes) -> Shown:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return Shown(base64.b64encode(body).decode("ascii"), "base64")
    try:
        return Shown(orjson.dumps(orjson.loads(body), option=orjson.OPT_INDENT_2).decode(), "json")
    except orjson.JSONDecodeError:
        pass
    if text.lstrip().startswith("<"):
        return Shown(indented_xml(text), "xml")
    return Shown(text, "text")


def indented_xml(text: str) -> str:
    """One element, comment or text a line, indented by depth; a leaf's text stays on its
    element's line."""
    tokens = [token for token in _XML_TOKEN.findall(text) if token.strip()]
    lines: list[str] = []
    depth = 0
    index = 0
    while index < len(tokens):
        token = tokens[index].strip()
        leaf = tokens[index + 1 : index + 3]
        if _opens(token) and len(leaf) == 2 and not leaf[0].startswith("<") and _closes(leaf[1]):
            lines.append("  " * depth + token + leaf[0].strip() + leaf[1].strip())
            index += 3
            continue
        if _closes(token):
            depth = max(depth - 1, 0)
        lines.append("  " * depth + token)
        if _opens(token):
            depth += 1
        index += 1
    return "\n".join(lines)


def _opens(token: str) -> bool:
    return token.startswith("<") and token[1:2] not in ("/", "?", "!") and not token.endswith("/>")


def _closes(token: str) -> bool:
    return token.startswith("</")

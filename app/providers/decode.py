"""Bytes to a document tree: XML or JSON, whatever the content type claims.

Senders and proxies label callbacks `text/xml`, `application/json`, `text/plain` or nothing,
so the body itself decides; the header only sharpens the error message when neither fits.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NoReturn
from xml.parsers import expat

import orjson
import xmltodict

from app.providers.model import ParseError

_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_WHITESPACE = b" \t\r\n"


class Format(StrEnum):
    XML = "xml"
    JSON = "json"


@dataclass(frozen=True, slots=True)
class Document:
    format: Format
    data: Any


def decode(body: bytes, content_type: str | None = None) -> Document:
    if body.startswith(_UTF16_BOMS):
        return Document(Format.XML, _parse_xml(body))
    text = body.removeprefix(_UTF8_BOM).lstrip(_WHITESPACE)
    if text.startswith(b"<"):
        # Not `body`: expat refuses an XML declaration that follows leading whitespace.
        return Document(Format.XML, _parse_xml(text))
    if text.startswith((b"{", b"[")):
        return Document(Format.JSON, _parse_json(text))
    if not text:
        raise ParseError("empty body")
    hint = f" (content type {content_type!r})" if content_type else ""
    raise ParseError(f"body is neither XML nor JSON{hint}")


def _parse_json(text: bytes) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ParseError(f"malformed JSON: {exc}") from None


def _parse_xml(body: bytes) -> Any:
    try:
        return xmltodict.parse(body, expat=_NoDtdExpat, xml_attribs=False, disable_entities=True)
    except expat.ExpatError as exc:
        raise ParseError(f"malformed XML: {exc}") from None
    except _RefusedDtd:
        raise ParseError("XML with a document type declaration (DTD) is refused") from None
    except ValueError as exc:
        # xmltodict raises ValueError for entity declarations when entities are disabled.
        raise ParseError(f"XML refused: {exc}") from None


class _RefusedDtd(Exception):
    pass


def _refuse_dtd(*_args: object) -> NoReturn:
    raise _RefusedDtd


class _NoDtdExpat:
    """Stands in for the `expat` module xmltodict builds its parser from (its documented hook).

    xmltodict already refuses entity declarations; this also refuses the DOCTYPE itself, so no
    internal subset is read and no external DTD or entity is ever looked at.
    """

    @staticmethod
    def ParserCreate(*args: Any, **kwargs: Any) -> Any:  # noqa: N802 - mirrors expat's name
        parser = expat.ParserCreate(*args, **kwargs)
        parser.StartDoctypeDeclHandler = _refuse_dtd
        parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        return parser

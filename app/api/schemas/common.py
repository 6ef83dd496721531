"""Shapes every endpoint shares: errors, pages, and raw bodies."""

from __future__ import annotations

import base64
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict
from pydantic.config import JsonDict

Item = TypeVar("Item")


class Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class ErrorBody(Out):
    code: str
    message: str
    delivery_id: int | None = None


class ErrorOut(Out):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"error": {"code": "not_found", "message": "no tencent-ci job 'j123'"}},
                {
                    "error": {
                        "code": "bad_payload",
                        "message": "malformed XML: no element found: line 1, column 22",
                        "delivery_id": 1042,
                    }
                },
            ]
        }
    )
    error: ErrorBody


def _page_examples(schema: JsonDict, page: type[Any]) -> None:
    """Page[X] shows a last page holding X's example: the generic cannot name one for every X."""
    args = page.__pydantic_generic_metadata__["args"]
    extra = args[0].model_config.get("json_schema_extra") if args else None
    if isinstance(extra, dict) and isinstance(extra.get("examples"), list):
        schema["examples"] = [{"items": extra["examples"][:1], "next_cursor": None}]


class Page(Out, Generic[Item]):
    model_config = ConfigDict(json_schema_extra=_page_examples)

    items: list[Item]
    next_cursor: str | None


class BodyOut(Out):
    """A raw body: as text when it is UTF-8, otherwise base64."""

    encoding: Literal["text", "base64"]
    content: str

    @classmethod
    def of(cls, body: bytes | None) -> BodyOut | None:
        if body is None:
            return None
        try:
            return cls(encoding="text", content=body.decode("utf-8"))
        except UnicodeDecodeError:
            return cls(encoding="base64", content=base64.b64encode(body).decode("ascii"))

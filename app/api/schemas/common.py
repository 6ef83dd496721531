"""Shapes every endpoint shares: errors, pages, and raw bodies."""

from __future__ import annotations

import base64
from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

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


class Page(Out, Generic[Item]):
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

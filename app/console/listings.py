"""A listing page's filters: the query string of an HTML form read into the API's own parameter
models (app/api/params.py), so that the console filters exactly as /v1 does."""

from __future__ import annotations

from typing import TypeVar, get_origin
from urllib.parse import urlencode

from pydantic import BaseModel, ValidationError
from starlette.datastructures import QueryParams

P = TypeVar("P", bound=BaseModel)


def read_params(query: QueryParams, model: type[P]) -> P | str:
    """The parameters, or what is wrong with them. A form sends every field, the empty ones
    as "": those are left out, as if not asked."""
    values: dict[str, object] = {}
    for name, value in query.multi_items():
        if value == "":
            continue
        field = model.model_fields.get(name)
        if field is not None and get_origin(field.annotation) is list:
            listed = values.setdefault(name, [])
            assert isinstance(listed, list)
            listed.append(value)
        else:
            values[name] = value
    try:
        return model.model_validate(values)
    except ValidationError as error:
        return "; ".join(
            f"{'.'.join(str(part) for part in problem['loc']) or 'query'}: {problem['msg']}"
            for problem in error.errors()
        )


def page_query(query: QueryParams, cursor: str | None) -> str | None:
    """The query string of the page after this one (the same filters, the next cursor)."""
    if cursor is None:
        return None
    kept = [(name, value) for name, value in query.multi_items() if name != "cursor" and value]
    return urlencode([*kept, ("cursor", cursor)])


def in_use(query: QueryParams) -> int:
    """How many filters the query sets (paging aside)."""
    return len({name for name, value in query.multi_items() if value} - {"cursor", "limit"})

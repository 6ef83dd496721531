"""The OpenAPI document with its examples intact.

FastAPI drops every null while it builds the document (fastapi#5559, open in 0.165), examples
included: a job example would lose `"error": null`, a Suno failure `"vocal_removal_info": null`,
and no longer show the contract's always-present keys. Once built, the examples are put back as
the models and routes declare them. Remove this when FastAPI keeps nulls.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import GenericAlias
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from pydantic import TypeAdapter

_REF = "#/components/schemas/{model}"


def keep_example_nulls(app: FastAPI, routers: Iterable[APIRouter]) -> None:
    """`routers`: those included in `app` (FastAPI keeps included routers nested, privately)."""
    build = app.openapi
    routes = [route for router in routers for route in router.routes if isinstance(route, APIRoute)]

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = build()
            for route in routes:
                _restore(document, route)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _restore(document: dict[str, Any], route: APIRoute) -> None:
    schemas = document.get("components", {}).get("schemas", {})
    if route.response_model is not None:
        # Wrapped in a list, the model and everything it refers to land in $defs by name.
        listed: Any = GenericAlias(list, (route.response_model,))
        own = TypeAdapter(listed).json_schema(mode="serialization", ref_template=_REF)
        for name, definition in own.get("$defs", {}).items():
            if "examples" in definition and name in schemas:
                schemas[name]["examples"] = definition["examples"]
    body = (route.openapi_extra or {}).get("requestBody")
    if body is not None:
        for method in route.methods or ():
            document["paths"][route.path][method.lower()]["requestBody"] = body

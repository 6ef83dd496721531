"""The OpenAPI document: the endpoints served through plain routes included, examples intact.

FastAPI drops every null while it builds the document (fastapi#5559, open in 0.165), examples
included: a job example would lose `"error": null`, a Suno failure `"vocal_removal_info": null`,
and no longer show the contract's always-present keys. Once built, the examples are put back as
the models and routes declare them. Remove this when FastAPI keeps nulls.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import GenericAlias
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import TypeAdapter
from starlette.routing import BaseRoute

_REF = "#/components/schemas/{model}"


def document(app: FastAPI, *, declared: list[APIRoute], routes: Iterable[BaseRoute]) -> None:
    """`declared`: endpoints `app` serves through plain routes, documented as these APIRoutes;
    `routes`: all of `app`'s others (FastAPI keeps included routers nested, privately)."""
    api_routes = [*declared, *(route for route in routes if isinstance(route, APIRoute))]

    def build() -> dict[str, Any]:
        return get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            routes=[*declared, *app.routes],
        )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = build()
            for route in api_routes:
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

"""The OpenAPI document: real examples everywhere, and the API keeps to it under Schemathesis.

The service runs in-process on a migrated SQLite file, seeded with every callback example the
document shows, so the reads also find existing jobs and deliveries. The run is bounded and
repeatable: a fixed number of derandomized examples per operation, and long polls cut short by
max_wait_s (?wait= goes up to 60 s).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.routing import APIRoute
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import get_client, shutdown_lifespans
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from app.api import callbacks, deliveries, health, jobs, stats, watches
from app.api.callback_docs import EXAMPLES
from app.main import create_app
from app.schema import upgrade_to_head
from tests.conftest import API_TOKEN, FIXTURES, Backend

# schemathesis gives every operation's test one node id; pytest-xdist runs one test per id, so
# on its workers 17 of the operations would pass unrun. `make test` runs this module again in
# one process; among xdist workers it says so.
pytestmark = pytest.mark.skipif(
    "PYTEST_XDIST_WORKER" in os.environ,
    reason="one node id for many tests: run in one process (pytest -n 0 tests/test_openapi.py)",
)
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
EXAMPLE_FILES = Path(__file__).parent.parent / "app" / "api" / "examples"
CONFIG = schemathesis.Config.from_dict(
    {
        "headers": AUTH,
        "generation": {"max-examples": 30, "deterministic": True, "database": "none"},
    }
)
# Loaded at collection, before any fixture exists (schemathesis.pytest.from_fixture fails on
# pytest 9): the document depends on neither settings nor database, and every call is sent to
# the seeded service.
schema = schemathesis.openapi.from_dict(
    create_app(Backend("sqlite", "sqlite://").settings()).openapi(), config=CONFIG
)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    path = tmp_path_factory.mktemp("openapi") / "stemhook.db"
    settings = Backend("sqlite", f"sqlite:///{path}").settings(max_wait_s=0.05)
    upgrade_to_head(settings)
    yield create_app(settings)
    # Schemathesis started the service's lifespan on first use; stop the writer and engines.
    shutdown_lifespans()


@pytest.fixture(scope="module")
def document(service: FastAPI) -> dict[str, Any]:
    with get_client(service) as client:
        answer = client.get("/openapi.json")
    assert answer.status_code == 200
    served: dict[str, Any] = answer.json()
    return served


def callback_examples(document: dict[str, Any]) -> Iterator[tuple[str, str, str, Any]]:
    """(path, media type, example name, value) of every documented callback body."""
    for path, operations in document["paths"].items():
        body = operations.get("post", {}).get("requestBody")
        if path.startswith("/callbacks") and body:
            for media_type, media in body["content"].items():
                for name, example in media["examples"].items():
                    yield path, media_type, name, example["value"]


@pytest.fixture(scope="module")
def seeded(service: FastAPI, document: dict[str, Any]) -> dict[str, tuple[int, Any]]:
    """Every documented callback example, posted as shown: what each was answered."""
    answers = {}
    with get_client(service) as client:
        for path, media_type, name, value in callback_examples(document):
            body = value.encode() if isinstance(value, str) else orjson.dumps(value)
            answer = client.post(path, data=body, headers={"Content-Type": media_type})
            answers[f"{path} {name}"] = (answer.status_code, answer.json())
    return answers


@pytest.mark.usefixtures("seeded")
@schema.parametrize()
def test_api_keeps_to_its_document(case: schemathesis.Case, service: FastAPI) -> None:
    case.call_and_validate(
        app=service,
        checks=[not_a_server_error, response_schema_conformance, status_code_conformance],
    )


def test_the_served_document_is_valid_openapi(document: dict[str, Any]) -> None:
    schemathesis.openapi.from_dict(document).validate()


def test_every_callback_endpoint_shows_its_familys_examples(document: dict[str, Any]) -> None:
    shown: dict[str, set[str]] = {}
    for path, _media_type, name, _value in callback_examples(document):
        shown.setdefault(path, set()).add(name)

    assert shown == {
        "/callbacks": {Path(examples[0][0]).stem for examples in EXAMPLES.values()},
        **{
            f"/callbacks/{provider}": {Path(name).stem for name, _summary in examples}
            for provider, examples in EXAMPLES.items()
        },
    }


def test_every_callback_example_is_accepted(seeded: dict[str, tuple[int, Any]]) -> None:
    refused = {
        example: answer
        for example, (status, answer) in seeded.items()
        if status != 200 or answer["outcome"] not in ("accepted", "duplicate")
    }
    assert seeded
    assert refused == {}


def test_example_payloads_are_the_test_fixtures() -> None:
    shipped = sorted(EXAMPLE_FILES.glob("*/*"))
    assert [path.relative_to(EXAMPLE_FILES).as_posix() for path in shipped] == sorted(
        f"{provider}/{name}" for provider, examples in EXAMPLES.items() for name, _ in examples
    )
    for path in shipped:
        assert path.read_bytes() == (FIXTURES / path.parent.name / path.name).read_bytes(), path


def test_every_operation_shows_an_answer_example(document: dict[str, Any]) -> None:
    components = document["components"]["schemas"]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            content = operation["responses"][_success(operation)]["content"]
            if "application/json" not in content:  # a stored file's bytes: nothing to show
                assert list(content) == ["application/octet-stream"], f"{method.upper()} {path}"
                continue
            answer = content["application/json"]["schema"]
            name = answer["$ref"].removeprefix("#/components/schemas/")
            assert components[name].get("examples"), f"{method.upper()} {path}"


@pytest.mark.parametrize(
    "route",
    [
        route
        for route in [
            *callbacks.declared_routes(),
            *(
                route
                for module in (deliveries, health, jobs, stats, watches)
                for route in module.router.routes
            ),
        ]
        if isinstance(route, APIRoute)
    ],
    ids=lambda route: f"{','.join(sorted(route.methods))} {route.path}",
)
def test_served_answer_examples_keep_to_the_document(
    route: APIRoute, document: dict[str, Any]
) -> None:
    """What /docs shows, nulls included, is a valid answer of its endpoint."""
    for method in route.methods:
        operation = document["paths"][route.path][method.lower()]
        status = _success(operation)
        answer = operation["responses"][status]["content"]["application/json"]["schema"]
        name = answer["$ref"].removeprefix("#/components/schemas/")
        for example in document["components"]["schemas"][name]["examples"]:
            request = httpx.Request(method, f"http://stemhook{route.path}")
            response = httpx.Response(int(status), json=example, request=request)
            response.elapsed = timedelta(0)  # what a client sets once the answer was read
            schema[route.path][method].validate_response(response)


def _success(operation: dict[str, Any]) -> str:
    """The status an operation answers when it does what it is asked: its lowest 2xx with a
    body."""
    return min(
        status
        for status, answer in operation["responses"].items()
        if status.startswith("2") and "content" in answer
    )


def test_served_examples_keep_their_nulls(document: dict[str, Any]) -> None:
    job = document["components"]["schemas"]["JobDetailOut"]["examples"][0]
    assert (job["error"], job["raw"], job["custom_id"]) == (None, None, None)
    suno = document["paths"]["/callbacks/suno"]["post"]["requestBody"]["content"]
    failure = suno["application/json"]["examples"]["failed_451"]["value"]
    assert failure["data"]["vocal_removal_info"] is None


def test_docs_render(service: FastAPI) -> None:
    with get_client(service) as client:
        page = client.get("/docs")
    assert page.status_code == 200
    assert "/openapi.json" in page.text


@pytest.mark.parametrize(
    ("url", "status"),
    [
        # Schemathesis found these 500s: times that leave the datetime range once in UTC...
        ("/v1/jobs?created_after=0001-01-01T00:00:00%2B01:00", 422),
        ("/v1/deliveries?received_before=9999-12-31T23:59:59-01:00", 422),
        # ... or once the default 24 hours are taken off.
        ("/v1/stats?until=0001-01-01T00:00:00Z", 200),
    ],
)
def test_times_at_the_ends_of_the_calendar(service: FastAPI, url: str, status: int) -> None:
    with get_client(service) as client:
        answer = client.get(url, headers=AUTH)
    assert answer.status_code == status, answer.text

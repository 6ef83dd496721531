"""Health for orchestrators: /healthz never asks the database, /readyz does."""

from __future__ import annotations

import httpx
import pytest
from alembic import command

from app.schema import alembic_config, head_revision
from tests.conftest import Backend, open_client
from tests.servers import free_port

pytestmark = [pytest.mark.anyio, pytest.mark.servers]


async def test_ready_when_the_schema_is_at_head(
    client: httpx.AsyncClient, backend: Backend
) -> None:
    answer = await client.get("/readyz")
    assert answer.status_code == 200
    assert answer.json() == {
        "status": "ready",
        "schema_revision": head_revision(backend.settings()),
    }


async def test_not_ready_behind_on_migrations_or_without_a_database(
    backend: Backend, fresh_database_url: str
) -> None:
    behind = Backend(backend.name, fresh_database_url).settings()
    command.upgrade(alembic_config(behind), "0001")
    dead = Backend("dead", f"postgresql://postgres@127.0.0.1:{free_port()}/x").settings()

    async for client in open_client(behind):
        old_schema = await client.get("/readyz")
    async for client in open_client(dead):
        no_database = await client.get("/readyz")
        alive = await client.get("/healthz")

    assert (old_schema.status_code, no_database.status_code, alive.status_code) == (503, 503, 200)
    assert "0001" in old_schema.json()["error"]["message"]
    assert no_database.json()["error"]["code"] == "not_ready"

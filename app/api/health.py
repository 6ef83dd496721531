"""Health for orchestrators and proxies, without a token.

GET /healthz: the process is up and answering (no database involved: a database outage must not
make an orchestrator restart healthy processes). GET /readyz: this process can do its work — the
database answers, its schema is at the migrations' head, and the writer is running; 503 if not.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import DBAPIError

from app.api.deps import SessionDep, app_writer
from app.api.schemas.common import ErrorOut
from app.errors import NotReady
from app.queries.health import schema_revision

router = APIRouter(tags=["health"])


class Health(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok"}]})

    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"status": "ready", "schema_revision": "0002"}]}
    )

    status: Literal["ready"] = "ready"
    schema_revision: str


@router.get("/healthz")
async def healthz() -> Health:
    return Health()


@router.get("/readyz", responses={503: {"model": ErrorOut}})
async def readyz(request: Request, session: SessionDep) -> Readiness:
    if not (await app_writer(request)).alive:
        raise NotReady("the writer process is not running")
    expected: str | None = request.app.state["head_revision"]
    try:
        revision = await schema_revision(session)
    except DBAPIError:
        raise NotReady("the database does not answer") from None
    if revision != expected:
        raise NotReady(f"the database schema is at {revision}, the code expects {expected}")
    return Readiness(schema_revision=revision or "")

"""Request dependencies: settings, writer, read sessions and the API token check.

All are `async def` although none awaits: FastAPI runs plain `def` dependencies in its thread
pool, which cost two thread hops per request. The callback routes, the hot path, await the
accessors directly instead of going through dependency injection at all.

The application's state is read by key, not as attributes: Starlette's State serves attributes
through __getattr__, reached only after the ordinary look-up has failed and formatted its
AttributeError message (docs/decisions/0007-the-web-processs-hot-path.md).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.api.slow_bodies import SlowBodies
from app.config import Settings
from app.errors import Unauthorized
from app.ingest.writer import Writer
from app.metrics import Metrics
from app.storage.store import FileStore
from app.tokens import matching_token
from app.watch import JobWatch


async def app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state["settings"]
    return settings


async def app_writer(request: Request) -> Writer:
    writer: Writer = request.app.state["writer"]
    return writer


async def app_watch(request: Request) -> JobWatch:
    watch: JobWatch = request.app.state["watch"]
    return watch


async def app_slow_bodies(request: Request) -> SlowBodies:
    slow_bodies: SlowBodies = request.app.state["slow_bodies"]
    return slow_bodies


async def app_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state["metrics"]
    return metrics


async def app_files(request: Request) -> FileStore:
    files: FileStore = request.app.state["files"]
    return files


async def request_time() -> datetime:
    """Now, for a page that shows a window of time up to now: a dependency, so that a test or a
    benchmark looking at data of another day can set it (FastAPI's dependency_overrides)."""
    return datetime.now(UTC)


async def _sessions(request: Request) -> async_sessionmaker[AsyncSession]:
    sessions: async_sessionmaker[AsyncSession] = request.app.state["read_db"].sessions
    return sessions


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state["read_db"].sessions() as session:
        yield session


SettingsDep = Annotated[Settings, Depends(app_settings)]
WriterDep = Annotated[Writer, Depends(app_writer)]
SessionDep = Annotated[AsyncSession, Depends(_session)]
# For handlers that need several transactions (long polling looks again with fresh snapshots).
SessionsDep = Annotated[async_sessionmaker[AsyncSession], Depends(_sessions)]
WatchDep = Annotated[JobWatch, Depends(app_watch)]
FilesDep = Annotated[FileStore, Depends(app_files)]
NowDep = Annotated[datetime, Depends(request_time)]

_bearer = HTTPBearer(auto_error=False, description="One of STEMHOOK_API_TOKENS.")


async def require_api_token(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    given = credentials.credentials if credentials else ""
    if matching_token(given, settings.api_tokens) is None:
        raise Unauthorized("a valid 'Authorization: Bearer <token>' header is required")

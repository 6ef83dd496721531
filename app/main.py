"""The ASGI application: `app.main:app`, built by create_app()."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.api import callbacks, deliveries, health, jobs, stats
from app.api.errors import install_error_handlers
from app.config import Settings, get_settings
from app.db import create_sync_engine, open_read_database
from app.ingest.writer import Writer
from app.watch import JobWatch


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        write_engine = create_sync_engine(settings)
        writer = Writer(
            write_engine,
            max_batch=settings.write_batch_max,
            timeout_s=settings.write_timeout_s,
        )
        read_db = open_read_database(settings)
        watch = JobWatch(read_db.sessions, poll_s=settings.wait_poll_s)
        writer.start()
        watch.start()
        app.state.writer = writer
        app.state.read_db = read_db
        app.state.watch = watch
        try:
            yield
        finally:
            await watch.stop()
            await writer.stop()
            write_engine.dispose()
            await read_db.engine.dispose()

    app = FastAPI(
        title="stemhook",
        summary="Receives, keeps and normalizes the completion callbacks of cloud audio jobs.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.include_router(callbacks.router)
    app.include_router(jobs.router)
    app.include_router(deliveries.router)
    app.include_router(stats.router)
    app.include_router(health.router)
    return app


app = create_app()

"""The ASGI application: `app.main:app`, built by create_app()."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp

from app import console
from app.api import callbacks, deliveries, files, health, jobs, metrics, stats, watches
from app.api.errors import install_error_handlers
from app.api.openapi import document
from app.api.slow_bodies import SlowBodies
from app.config import Settings, get_settings
from app.logs import RequestLog
from app.metrics import Metrics
from app.runtime import running
from app.schema import head_revision


class _Stemhook(FastAPI):
    """FastAPI with the request log and the callback endpoints outside its own middleware.

    Every layer a request passes costs it on each suspension and resumption of the handler and
    on each message sent, and a callback needs none of FastAPI's: the server-error, telemetry
    and body-limit middleware, the exception middleware, the router
    (docs/decisions/0007-the-web-processs-hot-path.md). The callback endpoints answer their own
    errors, unexpected ones included (app/api/callbacks.py). The request log is outermost, so
    that every request, callback or not, gets its line.
    """

    def build_middleware_stack(self) -> ASGIApp:
        return RequestLog(callbacks.CallbackEndpoints(super().build_middleware_stack()))


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.head_revision = head_revision(settings)
        async with running(settings) as runtime:
            app.state.writer = runtime.writer
            app.state.read_db = runtime.read_db
            app.state.watch = runtime.watch
            app.state.files = runtime.files
            yield

    app = _Stemhook(
        title="stemhook",
        summary="Receives, keeps and normalizes the completion callbacks of cloud audio jobs.",
        version="0.1.0",
        lifespan=lifespan,
        # Off: it looks for global providers on every request, and stemhook reports through
        # Prometheus and its log lines (docs/decisions/0007-the-web-processs-hot-path.md).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.metrics = Metrics.create()
    app.state.slow_bodies = SlowBodies(settings.body_timeout_s)
    install_error_handlers(app)
    routers = (
        jobs.router,
        watches.router,
        files.router,
        deliveries.router,
        stats.router,
        health.router,
        metrics.router,
    )
    for router in (*routers, *console.routers):
        app.include_router(router)
    document(
        app,
        declared=callbacks.declared_routes(),
        routes=[route for r in routers for route in r.routes],
    )
    return app


app = create_app()

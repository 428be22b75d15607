"""The application factory: settings, lifespan, middleware, and every module's router."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app import bootstrap
from app.platform import health
from app.platform.config import Settings, get_settings
from app.platform.db import Database
from app.platform.db.consistency import ConsistencyTokenMiddleware
from app.platform.errors import install_error_handlers
from app.platform.events.dispatcher import Dispatcher
from app.platform.middleware import BodySizeLimitMiddleware, RequestIdMiddleware
from app.platform.observability import endpoint as metrics_endpoint
from app.platform.observability.http import HttpMetricsMiddleware
from app.platform.observability.logging import configure_logging, get_logger

log = get_logger("app")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings)
    bootstrap.subscribe_listeners(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.db = Database(settings)
        await app.state.db.monitor.start()
        dispatcher: asyncio.Task[None] | None = None
        if settings.events_dispatcher_enabled:
            app.state.dispatcher = Dispatcher(settings, name="app-dispatcher")
            dispatcher = asyncio.create_task(app.state.dispatcher.run(), name="dispatcher")
        log.info("startup", env=settings.env, replica=settings.replica_database_url is not None)
        try:
            yield
        finally:
            if dispatcher is not None:
                app.state.dispatcher.stop()
                await dispatcher
            await app.state.db.dispose()
            log.info("shutdown")

    app = FastAPI(
        title="SaaS backend",
        version="0.1.0",
        summary="A modular monolith: auth, payments, notifications and analytics.",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    install_error_handlers(app)
    # Starlette runs the last-added middleware first: metrics wrap request ids (so they see the
    # 500 those render), request ids wrap everything else.
    app.add_middleware(
        ConsistencyTokenMiddleware,
        cookie_max_age=int(settings.db_read_your_writes_seconds),
        secure=not settings.is_dev,
    )
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(HttpMetricsMiddleware, router=app.router, access_log=settings.access_log)

    app.include_router(health.router)
    app.include_router(metrics_endpoint.router)
    bootstrap.mount_modules(app)
    return app

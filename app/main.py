"""The application factory: settings, lifespan, middleware, and every module's router."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI

from app import bootstrap
from app.platform import faults, health
from app.platform.config import Settings, get_settings
from app.platform.db import Database
from app.platform.events.dispatcher import Dispatcher
from app.platform.jobs import run_jobs
from app.platform.middleware import PlatformMiddleware
from app.platform.observability import endpoint as metrics_endpoint
from app.platform.observability.logging import configure_logging, get_logger
from app.platform.openapi import install_openapi
from app.platform.process import tune_garbage_collector
from app.platform.web.problems import install_database_error_handlers, install_error_handlers

log = get_logger("app")


def create_app(
    settings: Settings | None = None, adapters: bootstrap.Adapters | None = None
) -> FastAPI:
    """The app on ``settings``, reaching the outside through ``adapters`` (built from the
    settings by the composition root unless a test hands its fakes in)."""
    settings = settings or get_settings()
    configure_logging(settings)
    adapters = adapters or bootstrap.build_adapters(settings)
    bootstrap.subscribe_listeners(settings, adapters=adapters)
    app = FastAPI(
        title="SaaS backend",
        version="0.1.0",
        summary="A modular monolith: auth, payments, notifications and analytics.",
        lifespan=_lifespan(settings, adapters),
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    install_error_handlers(app)
    install_database_error_handlers(app)
    # The platform's one ASGI layer (request ids, metrics, body limit, consistency token, access
    # line): outermost, so it sees the final status of everything inside.
    app.add_middleware(
        PlatformMiddleware,
        router=app.router,
        max_body_bytes=settings.max_body_bytes,
        cookie_max_age=int(settings.db_read_your_writes_seconds),
        secure_cookies=not settings.is_dev,
        metrics=settings.http_metrics,
        access_log=settings.access_log,
        slow_fault_seconds=settings.faults_slow_response_seconds,
    )
    app.include_router(health.router)
    app.include_router(metrics_endpoint.router)
    bootstrap.mount_modules(app, adapters)
    install_openapi(app)
    return app


Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def _lifespan(settings: Settings, adapters: bootstrap.Adapters) -> Lifespan:
    """The process's life beside its requests: databases, adapters, jobs, the dispatcher."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.db = Database(settings)
        await app.state.db.monitors.start()
        await adapters.start()
        stop_jobs = asyncio.Event()
        app_jobs = bootstrap.app_jobs(settings, adapters, app.state.db.session)
        jobs = asyncio.create_task(run_jobs(app_jobs, stop_jobs))
        dispatcher: asyncio.Task[None] | None = None
        if settings.events_dispatcher_enabled:
            app.state.dispatcher = Dispatcher(settings, name="app-dispatcher")
            dispatcher = asyncio.create_task(app.state.dispatcher.run(), name="dispatcher")
        switches = faults.start_refresh(settings)
        module_tasks = [
            asyncio.create_task(run(), name=f"module-task-{n}")
            for n, run in enumerate(bootstrap.background_tasks(settings))
        ]
        tune_garbage_collector(freeze=settings.gc_freeze, gen0_threshold=settings.gc_gen0_threshold)
        log.info("startup", env=settings.env, replicas=len(settings.replica_urls))
        try:
            yield
        finally:
            if dispatcher is not None:
                app.state.dispatcher.stop()
                await dispatcher
            await faults.stop_refresh(switches)
            for task in module_tasks:
                task.cancel()
            await asyncio.gather(*module_tasks, return_exceptions=True)
            stop_jobs.set()
            await jobs
            await adapters.aclose()
            await app.state.db.dispose()
            log.info("shutdown")

    return lifespan

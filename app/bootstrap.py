"""The composition root: mounts each module's router and wires cross-module listeners and ports.

This is the one place that knows every module; the modules know only each other's interfaces.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from app.modules.analytics.router import router as analytics_router

# Each module contributes its routers here as it grows endpoints.
MODULE_ROUTERS: tuple[APIRouter, ...] = (analytics_router,)


def mount_modules(app: FastAPI) -> None:
    for router in MODULE_ROUTERS:
        app.include_router(router)


def load_models() -> None:
    """Import every module's models so ``Base.metadata`` is complete (Alembic, tests)."""
    import app.modules.analytics.models
    import app.platform.db.base  # noqa: F401

"""The composition root: mounts each module's router and wires cross-module listeners and ports.

This is the one place that knows every module; the modules know only each other's interfaces.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from app.modules.notifications.interface import NotificationRequested
from app.modules.notifications.listeners import NotificationListeners
from app.modules.notifications.router import router as notifications_router
from app.modules.notifications.senders import build_sender
from app.platform.config import Settings
from app.platform.events import REGISTRY, ListenerRegistry

# Each module contributes its routers here as it grows endpoints.
MODULE_ROUTERS: tuple[APIRouter, ...] = (notifications_router,)


def mount_modules(app: FastAPI) -> None:
    for router in MODULE_ROUTERS:
        app.include_router(router)


def subscribe_listeners(settings: Settings, registry: ListenerRegistry = REGISTRY) -> None:
    """Subscribe every module's listeners (again: idempotent, the last settings win)."""
    notifications = NotificationListeners(build_sender(settings))
    registry.subscribe(
        NotificationRequested,
        notifications.on_notification_requested,
        name="notifications.deliver_requested",
    )


def load_models() -> None:
    """Import every module's models so ``Base.metadata`` is complete (Alembic, tests)."""
    import app.modules.notifications.models
    import app.platform.db.base
    import app.platform.events.models  # noqa: F401

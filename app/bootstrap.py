"""The composition root: mounts each module's router and wires cross-module listeners and ports.

This is the one place that knows every module; the modules know only each other's interfaces.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, FastAPI

from app.modules.analytics import listeners as analytics
from app.modules.analytics.router import router as analytics_router
from app.modules.auth.interface import (
    EmailVerified,
    PasswordResetAsked,
    PasswordResetRequested,
    UserSignedUp,
)
from app.modules.auth.listeners import AuthListeners
from app.modules.auth.router import router as auth_router
from app.modules.auth.service import principal_is_current
from app.modules.notifications.interface import NotificationRequested
from app.modules.notifications.listeners import NotificationListeners
from app.modules.notifications.mailbox import router as mailbox_router
from app.modules.notifications.router import router as notifications_router
from app.modules.notifications.senders import build_sender
from app.modules.payments.interface import OrderPaid, PaymentFailed, RefundIssued
from app.modules.payments.router import router as payments_router
from app.modules.payments.service.cache import CACHE as PRODUCT_CACHE
from app.modules.payments.service.cache import CHANNEL as PRODUCT_CHANNEL
from app.platform.config import Settings
from app.platform.events import REGISTRY, ListenerRegistry
from app.platform.faults import ALLOWED_ENVIRONMENTS
from app.platform.listen import ChannelListener, asyncpg_dsn

MODULE_ROUTERS: tuple[APIRouter, ...] = (
    auth_router,
    payments_router,
    notifications_router,
    analytics_router,
)


def mount_modules(app: FastAPI) -> None:
    for router in MODULE_ROUTERS:
        app.include_router(router)
    # The development mail capture (a captured link is a credential): never in production.
    settings: Settings | None = getattr(app.state, "settings", None)
    if settings is not None and settings.env in ALLOWED_ENVIRONMENTS:
        app.include_router(mailbox_router)
    bind_ports(app)


def bind_ports(app: FastAPI) -> None:
    """The ports the platform's dependencies call, bound to the module that answers them."""
    # Admin and money routes ask auth whether a token was revoked (app/platform/security.py).
    app.state.principal_check = principal_is_current


def subscribe_listeners(settings: Settings, registry: ListenerRegistry = REGISTRY) -> None:
    """Subscribe every module's listeners (again: idempotent, the last settings win)."""
    auth = AuthListeners(settings)
    registry.subscribe(
        PasswordResetAsked, auth.on_password_reset_asked, name="auth.issue_password_reset"
    )
    notifications = NotificationListeners(build_sender(settings))
    registry.subscribe(
        NotificationRequested,
        notifications.on_notification_requested,
        name="notifications.deliver_requested",
    )
    registry.subscribe(
        UserSignedUp, notifications.on_user_signed_up, name="notifications.send_verification_email"
    )
    registry.subscribe(OrderPaid, notifications.on_order_paid, name="notifications.send_receipt")
    registry.subscribe(
        PaymentFailed, notifications.on_payment_failed, name="notifications.payment_failed_notice"
    )
    registry.subscribe(
        RefundIssued, notifications.on_refund_issued, name="notifications.refund_notice"
    )
    registry.subscribe(
        PasswordResetRequested,
        notifications.on_password_reset_requested,
        name="notifications.send_password_reset_email",
    )

    registry.subscribe(UserSignedUp, analytics.on_user_signed_up, name="analytics.record_signup")
    registry.subscribe(
        EmailVerified, analytics.on_email_verified, name="analytics.record_verification"
    )
    registry.subscribe(OrderPaid, analytics.on_order_paid, name="analytics.record_paid_checkout")
    registry.subscribe(
        PaymentFailed, analytics.on_payment_failed, name="analytics.record_failed_checkout"
    )


def background_tasks(settings: Settings) -> list[Callable[[], Coroutine[Any, Any, None]]]:
    """What each app process runs beside its requests for the modules (cache invalidations)."""
    PRODUCT_CACHE.enabled = settings.payments_catalog_cache
    PRODUCT_CACHE.max_entries = settings.payments_catalog_cache_max_entries
    PRODUCT_CACHE.clear()
    if not settings.payments_catalog_cache:
        return []
    listener = ChannelListener(
        asyncpg_dsn(str(settings.database_url)),
        PRODUCT_CHANNEL,
        on_notify=PRODUCT_CACHE.on_notify,
        on_connect=PRODUCT_CACHE.clear,
        label="payments_catalog",
    )
    PRODUCT_CACHE.live = listener.connected.is_set
    return [listener.run]


def load_models() -> None:
    """Import every module's models so ``Base.metadata`` is complete (Alembic, tests)."""
    import app.modules.analytics.models
    import app.modules.auth.models
    import app.modules.notifications.models
    import app.modules.payments.models
    import app.platform.db.base
    import app.platform.events.models
    import app.platform.faults
    import app.platform.ratelimit  # noqa: F401

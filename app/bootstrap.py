"""The composition root: mounts each module's router, builds the adapters, wires listeners and jobs.

This is the one place that knows every module; the modules know only each other's interfaces.
Adapters (payment provider, email sender, clock, id source) are built here from settings, once per
process, and handed to the modules as their ports; tests hand fakes in through the same door
(``create_app(settings, adapters=build_adapters(settings, payments_provider=fake))``).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from typing import Any

from fastapi import APIRouter, FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

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
from app.modules.auth.service import AuthPorts, principal_is_current
from app.modules.notifications.interface import NotificationRequested
from app.modules.notifications.listeners import NotificationListeners
from app.modules.notifications.mailbox import router as mailbox_router
from app.modules.notifications.router import router as notifications_router
from app.modules.notifications.senders import EmailSender, build_sender
from app.modules.payments.interface import OrderPaid, PaymentFailed, RefundIssued
from app.modules.payments.providers import FakePaymentProvider, PaymentProvider, WebhookTarget
from app.modules.payments.router import router as payments_router
from app.modules.payments.service import PaymentsPorts, ReconciliationService
from app.modules.payments.service.cache import CACHE as PRODUCT_CACHE
from app.modules.payments.service.cache import CHANNEL as PRODUCT_CHANNEL
from app.platform.canary.probe import job_runner as canary_runner
from app.platform.config import Settings
from app.platform.events import REGISTRY, ListenerRegistry
from app.platform.faults import ALLOWED_ENVIRONMENTS
from app.platform.jobs import Job
from app.platform.listen import ChannelListener, listen_dsn
from app.platform.ports import Clock, IdSource, random_ids, system_clock

MODULE_ROUTERS: tuple[APIRouter, ...] = (
    auth_router,
    payments_router,
    notifications_router,
    analytics_router,
)


@dataclass(frozen=True, slots=True)
class Adapters:
    """What the modules reach the outside world through, one set per process."""

    payments_provider: PaymentProvider
    email_sender: EmailSender
    clock: Clock = system_clock
    ids: IdSource = random_ids

    def payments(self) -> PaymentsPorts:
        return PaymentsPorts(provider=self.payments_provider, clock=self.clock, ids=self.ids)

    def auth(self) -> AuthPorts:
        return AuthPorts(clock=self.clock, ids=self.ids)

    async def start(self) -> None:
        await self.payments_provider.start()

    async def aclose(self) -> None:
        await self.payments_provider.aclose()


def build_payments_provider(settings: Settings) -> PaymentProvider:
    """The adapter ``APP_PAYMENTS_PROVIDER`` names (settings refuse the fake where it is unsafe)."""
    if settings.payments_provider == "fake":
        webhooks = None
        if settings.payments_fake_provider_webhook_url:
            webhooks = WebhookTarget(
                url=settings.payments_fake_provider_webhook_url,
                secret=settings.payments_webhook_secret.get_secret_value(),
                delay_ms=settings.payments_fake_provider_webhook_delay_ms,
                reorder=settings.payments_fake_provider_webhook_reorder,
            )
        # The fake stands for a service of its own: it never shares the app's pooler.
        ledger = settings.payments_fake_provider_database_url or settings.direct_database_url
        return FakePaymentProvider(
            str(ledger),
            latency_ms=settings.payments_fake_provider_latency_ms,
            webhooks=webhooks,
        )
    raise ValueError(f"no payment provider adapter named {settings.payments_provider!r}")


def build_adapters(
    settings: Settings,
    *,
    payments_provider: PaymentProvider | None = None,
    email_sender: EmailSender | None = None,
    clock: Clock = system_clock,
    ids: IdSource = random_ids,
) -> Adapters:
    """The adapters ``settings`` name; an adapter passed in (a test's fake) is used instead."""
    return Adapters(
        payments_provider=payments_provider or build_payments_provider(settings),
        email_sender=email_sender or build_sender(settings),
        clock=clock,
        ids=ids,
    )


def mount_modules(app: FastAPI, adapters: Adapters) -> None:
    for router in MODULE_ROUTERS:
        app.include_router(router)
    # The development mail capture (a captured link is a credential): never in production.
    settings: Settings | None = getattr(app.state, "settings", None)
    if settings is not None and settings.env in ALLOWED_ENVIRONMENTS:
        app.include_router(mailbox_router)
    bind_ports(app, adapters)


def bind_ports(app: FastAPI, adapters: Adapters) -> None:
    """The ports the modules' and the platform's dependencies read, bound for this app."""
    app.state.adapters = adapters
    app.state.payments_ports = adapters.payments()
    app.state.auth_ports = adapters.auth()
    # Admin and money routes ask auth whether a token was revoked (app/platform/security.py).
    app.state.principal_check = principal_is_current


def use_payments_provider(app: FastAPI, provider: PaymentProvider) -> None:
    """Rebind the app's payment provider (a test swapping in a fake, through the same door)."""
    bind_ports(app, replace(app.state.adapters, payments_provider=provider))


def worker_jobs(
    settings: Settings, adapters: Adapters, sessions: async_sessionmaker[AsyncSession]
) -> list[Job]:
    """The periodic jobs of ``python -m app worker``."""
    payments = ReconciliationService(sessions, settings, adapters.payments())

    async def reconcile() -> None:
        await payments.reconcile()

    async def purge() -> None:
        await payments.purge_expired_keys()

    jobs = [
        Job("payments.reconcile", settings.payments_reconcile_interval_seconds, reconcile),
        Job("payments.purge_idempotency_keys", settings.payments_purge_interval_seconds, purge),
    ]
    if (canary := canary_runner(settings)) is not None:
        jobs.append(Job("canary", settings.canary_interval_seconds, canary))
    return jobs


def app_jobs(
    settings: Settings, adapters: Adapters, sessions: async_sessionmaker[AsyncSession]
) -> list[Job]:
    """Periodic jobs of every API process: the gauges its /metrics serves."""
    payments = ReconciliationService(sessions, settings, adapters.payments())

    async def observe() -> None:
        await payments.observe_pending()

    return [Job("payments.observe_pending", 15.0, observe, first_after_seconds=15.0)]


def subscribe_listeners(
    settings: Settings,
    registry: ListenerRegistry = REGISTRY,
    *,
    sender: EmailSender | None = None,
    adapters: Adapters | None = None,
) -> None:
    """Subscribe every module's listeners (again: idempotent, the last settings win)."""
    if adapters is not None:
        sender = sender or adapters.email_sender
    auth = AuthListeners(settings, adapters.auth() if adapters is not None else None)
    registry.subscribe(
        PasswordResetAsked, auth.on_password_reset_asked, name="auth.issue_password_reset"
    )
    notifications = NotificationListeners(sender or build_sender(settings))
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
        listen_dsn(settings),
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

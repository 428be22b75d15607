"""The composition root builds the adapters once and hands them to the modules; a test hands
fakes through the same function."""

from __future__ import annotations

import uuid

from starlette.requests import Request

from app.bootstrap import build_adapters, use_payments_provider
from app.main import create_app
from app.modules.auth.dependencies import _ports as auth_ports
from app.modules.notifications.senders import MemoryEmailSender
from app.modules.payments.dependencies import get_ports
from app.modules.payments.providers import ChargeRecord, ChargeResult, RefundRecord, RefundResult
from app.platform.events import ListenerRegistry
from tests.unit.fakes import Clock, Ids, unit_settings


class NullProvider:
    """A provider that is never called here: only who holds it matters."""

    async def charge(
        self, *, amount: int, currency: str, token: str, reference: str, idempotency_key: str
    ) -> ChargeResult:
        raise AssertionError("not called")

    async def refund(
        self, *, charge_id: str, amount: int, currency: str, reference: str, idempotency_key: str
    ) -> RefundResult:
        raise AssertionError("not called")

    async def find_charge(self, *, reference: str) -> ChargeRecord | None:
        return None

    async def find_refund(self, *, reference: str) -> RefundRecord | None:
        return None

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


def _request(app: object) -> Request:
    return Request({"type": "http", "app": app, "headers": []})


def test_the_app_reaches_the_outside_only_through_the_adapters_it_was_given() -> None:
    settings = unit_settings(events_dispatcher_enabled=False)
    provider, sender, clock, ids = NullProvider(), MemoryEmailSender(), Clock(), Ids()
    adapters = build_adapters(
        settings, payments_provider=provider, email_sender=sender, clock=clock, ids=ids
    )
    app = create_app(settings, adapters=adapters)

    ports = get_ports(_request(app))
    assert ports.provider is provider
    assert (ports.clock, ports.ids) == (clock, ids)
    assert auth_ports(_request(app)).clock is clock
    assert app.state.adapters.email_sender is sender

    other = NullProvider()
    use_payments_provider(app, other)
    assert get_ports(_request(app)).provider is other
    assert get_ports(_request(app)).clock is clock  # the other ports stay as they were


def test_the_listeners_send_email_through_the_given_sender() -> None:
    from app.bootstrap import subscribe_listeners

    settings = unit_settings()
    sender = MemoryEmailSender()
    registry = ListenerRegistry()
    adapters = build_adapters(settings, payments_provider=NullProvider(), email_sender=sender)
    subscribe_listeners(settings, registry, adapters=adapters)
    receipt = registry.get("notifications.send_receipt")
    assert receipt is not None
    assert getattr(receipt.handler, "__self__").sender is sender  # noqa: B009


def test_the_settings_name_the_adapters_when_no_fake_is_given() -> None:
    adapters = build_adapters(unit_settings(email_backend="memory"))
    assert type(adapters.payments_provider).__name__ == "FakePaymentProvider"
    assert isinstance(adapters.email_sender, MemoryEmailSender)
    assert isinstance(adapters.ids(), uuid.UUID)

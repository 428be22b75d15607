"""Payments events: frozen, named and versioned; published only when their transaction commits."""

from __future__ import annotations

import uuid

import pydantic
import pytest
from fastapi import FastAPI

from app.modules.payments.interface import EVENTS, OrderPaid, PaymentFailed, RefundIssued
from app.modules.payments.service._common import _emit
from tests.modules.payments.conftest import CommittedEvents


def test_events_are_frozen_named_and_versioned() -> None:
    assert {e.name for e in EVENTS} == {
        "payments.order_paid",
        "payments.payment_failed",
        "payments.refund_issued",
    }
    assert all(e.version == 1 for e in EVENTS)
    assert {OrderPaid, PaymentFailed, RefundIssued} == set(EVENTS)
    event = OrderPaid(
        order_id=uuid.uuid4(),
        payment_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        amount=1,
        currency="EUR",
    )
    with pytest.raises(pydantic.ValidationError):
        event.amount = 2  # type: ignore[misc]
    assert OrderPaid.model_validate_json(event.model_dump_json()) == event


async def test_an_event_is_published_with_its_transaction_or_not_at_all(
    app: FastAPI, events: CommittedEvents
) -> None:
    def paid() -> OrderPaid:
        return OrderPaid(
            order_id=uuid.uuid4(),
            payment_id=uuid.uuid4(),
            user_id=uuid.uuid4(),
            amount=1,
            currency="EUR",
        )

    dropped, kept = paid(), paid()
    async with app.state.db.session() as session:
        async with session.begin():
            await _emit(session, dropped)
            await session.rollback()
        async with session.begin():
            await _emit(session, kept)
    assert (await events.all()) == [kept]

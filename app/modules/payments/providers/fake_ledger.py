"""The fake provider's ledger: its schema, its test tokens, what it records and sends.

Kept apart from ``fake.py`` (the provider's behaviour); see that module for the whole story.
"""

# ruff: noqa: S608 - interpolated: the schema constant and the caller's own column names.
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.modules.payments.providers.base import ChargeRecord, ChargeResult, RefundRecord

if TYPE_CHECKING:  # httpx is imported only by a fake that sends webhooks: startup stays lean
    import httpx

TOKENS = (
    "tok_success",
    "tok_declined",
    "tok_insufficient_funds",
    "tok_provider_error",
    "tok_timeout",
    "tok_pending",
)
SCHEMA = "fake_provider"
DDL = (
    f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.charge (
        charge_id text PRIMARY KEY, idempotency_key text NOT NULL UNIQUE,
        reference text NOT NULL, amount bigint NOT NULL, currency text NOT NULL,
        status text NOT NULL, failure_code text, created_at timestamptz NOT NULL DEFAULT now())""",
    f"CREATE INDEX IF NOT EXISTS charge_reference ON {SCHEMA}.charge (reference)",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.refund (
        refund_id text PRIMARY KEY, idempotency_key text NOT NULL UNIQUE,
        reference text NOT NULL, charge_id text NOT NULL REFERENCES {SCHEMA}.charge,
        amount bigint NOT NULL, currency text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now())""",
    f"CREATE INDEX IF NOT EXISTS refund_reference ON {SCHEMA}.refund (reference)",
    f"CREATE INDEX IF NOT EXISTS refund_charge_id ON {SCHEMA}.refund (charge_id)",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.webhook (
        id bigserial PRIMARY KEY, event_id text NOT NULL UNIQUE, payload jsonb NOT NULL,
        due_at timestamptz NOT NULL, delivered_at timestamptz, attempts int NOT NULL DEFAULT 0,
        last_error text)""",
    f"""CREATE INDEX IF NOT EXISTS webhook_due ON {SCHEMA}.webhook (due_at)
        WHERE delivered_at IS NULL""",
)
DECLINES = {"tok_declined": "card_declined", "tok_insufficient_funds": "insufficient_funds"}


@dataclass(frozen=True, slots=True)
class FakeCharge:
    charge_id: str
    amount: int
    currency: str
    reference: str
    idempotency_key: str
    status: str


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    url: str
    secret: str
    delay_ms: int = 0
    reorder: bool = False
    # Tests deliver into an in-process app through its ASGI transport.
    transport: httpx.AsyncBaseTransport | None = None


def charge_event(
    status: str, charge_id: str, reference: str, code: str | None
) -> tuple[str, dict[str, Any]]:
    kind = "charge.succeeded" if status == "succeeded" else "charge.failed"
    data: dict[str, Any] = {"charge_id": charge_id, "reference": reference}
    if code:
        data["failure_code"] = code
    return kind, data


def result_of(record: ChargeRecord) -> ChargeResult:
    return ChargeResult(
        status=record.status, charge_id=record.charge_id, failure_code=record.failure_code
    )


async def charge_by(conn: AsyncConnection, column: str, value: str) -> ChargeRecord | None:
    row = (
        await conn.execute(
            text(
                f"SELECT status, charge_id, amount, currency, failure_code "
                f"FROM {SCHEMA}.charge WHERE {column} = :v ORDER BY created_at LIMIT 1"
            ),
            {"v": value},
        )
    ).first()
    if row is None:
        return None
    declined = row.status == "declined"
    return ChargeRecord(
        status=row.status,
        charge_id=None if declined else row.charge_id,
        amount=row.amount,
        currency=row.currency,
        failure_code=row.failure_code,
    )


async def refund_by(conn: AsyncConnection, column: str, value: str) -> RefundRecord | None:
    row = (
        await conn.execute(
            text(
                f"SELECT refund_id, charge_id, amount, currency FROM {SCHEMA}.refund "
                f"WHERE {column} = :v LIMIT 1"
            ),
            {"v": value},
        )
    ).first()
    return None if row is None else RefundRecord(*row)

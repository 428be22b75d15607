"""A payment provider for development and tests that behaves like an external one.

Its ledger lives outside the app process, in PostgreSQL tables of its own schema
(``fake_provider``, created by the fake itself, never by the app's migrations), keyed by the
caller's idempotency key: it survives ``kill -9`` of the app, every process shares it (a refund
asked of another worker finds the charge), and it answers what happened to a reference. When
``APP_PAYMENTS_FAKE_PROVIDER_WEBHOOK_URL`` is set it also posts signed webhooks
(``charge.succeeded``, ``charge.failed``, ``charge.refunded``) from an outbox of its own, late
(``..._WEBHOOK_DELAY_MS``) and newest first (``..._WEBHOOK_REORDER``: a lone due event waits up
to one more delay for a later one to overtake it) when told to; a failed delivery is retried
with backoff, by whichever process runs the fake.

Test tokens (also in docs/payments.md):

- ``tok_success``: the charge succeeds.
- ``tok_declined``: declined, failure code ``card_declined``.
- ``tok_insufficient_funds``: declined, failure code ``insufficient_funds``.
- ``tok_provider_error``: the provider fails (``ProviderError``); nothing is charged.
- ``tok_timeout``: the provider never answers and charges nothing.
- ``tok_pending``: accepted as pending; ``settle_pending`` decides later (with a webhook).
- any other token: declined, failure code ``invalid_token``.

Every answer takes ``APP_PAYMENTS_FAKE_PROVIDER_LATENCY_MS``, half before the ledger is written
and half after, so an interrupted caller may find either "never charged" or "charged, unanswered".
"""

# ruff: noqa: S608 - the one thing interpolated into this fake's SQL is its schema constant.
from __future__ import annotations

import asyncio
import json
import uuid
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from app.modules.payments.providers.base import (
    ChargeRecord,
    ChargeResult,
    ProviderError,
    RefundRecord,
    RefundResult,
)
from app.modules.payments.providers.fake_ledger import (
    DDL,
    DECLINES,
    SCHEMA,
    TOKENS,
    FakeCharge,
    WebhookTarget,
    charge_by,
    charge_event,
    refund_by,
    result_of,
)
from app.modules.payments.providers.signing import SIGNATURE_HEADER, sign
from app.platform.observability.logging import get_logger

if TYPE_CHECKING:  # httpx is imported only by a fake that sends webhooks: startup stays lean
    import httpx

__all__ = ["SCHEMA", "TOKENS", "FakeCharge", "FakePaymentProvider", "WebhookTarget"]
log = get_logger("app.payments.fake_provider")

# Ledgers whose schema this process has already made sure of.
_PREPARED: set[str] = set()


class FakePaymentProvider:
    """The development and test provider; ``charges``/``refunds``: what this instance did."""

    def __init__(
        self,
        database_url: str,
        *,
        latency_ms: int = 0,
        webhooks: WebhookTarget | None = None,
        poll_interval: float = 0.1,
    ) -> None:
        self.database_url = database_url
        self.latency = latency_ms / 1000
        self.webhooks = webhooks
        self.poll_interval = poll_interval
        self.charges: list[FakeCharge] = []
        self.refunds: list[tuple[str, int]] = []
        self._engine: AsyncEngine | None = None
        self._ready = asyncio.Lock()
        self._created = False
        self._sender: asyncio.Task[None] | None = None
        self._http: httpx.AsyncClient | None = None

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        if self.webhooks is not None and self._sender is None:
            import httpx

            self._http = httpx.AsyncClient(transport=self.webhooks.transport, timeout=10.0)
            self._sender = asyncio.create_task(self._send_webhooks(), name="fake-provider-hooks")

    async def aclose(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            await asyncio.gather(self._sender, return_exceptions=True)
            self._sender = None
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None
            self._created = False

    async def _db(self) -> AsyncEngine:
        async with self._ready:
            if self._engine is None:
                self._engine = create_async_engine(
                    self.database_url, pool_size=2, max_overflow=18, pool_pre_ping=True
                )
            if not self._created and self.database_url not in _PREPARED:
                async with self._engine.begin() as conn:
                    # Two processes creating the schema at once would collide in the catalog.
                    await conn.execute(
                        text("SELECT pg_advisory_xact_lock(hashtext(:n))"), {"n": SCHEMA}
                    )
                    for statement in DDL:
                        await conn.execute(text(statement))
                _PREPARED.add(self.database_url)
            self._created = True
            return self._engine

    async def _wait(self) -> None:
        if self.latency:
            await asyncio.sleep(self.latency / 2)

    # --- the port ----------------------------------------------------------------------------

    async def charge(
        self, *, amount: int, currency: str, token: str, reference: str, idempotency_key: str
    ) -> ChargeResult:
        engine = await self._db()
        await self._wait()
        # The tokens are test fixtures of this fake, not secrets.
        if token == "tok_provider_error":  # noqa: S105
            raise ProviderError("the fake provider failed on purpose (tok_provider_error)")
        if token == "tok_timeout":  # noqa: S105
            await asyncio.Event().wait()  # a provider that never answers
        status: Literal["succeeded", "declined", "pending"]
        if token in ("tok_success", "tok_pending"):
            status = "succeeded" if token == "tok_success" else "pending"  # noqa: S105
            code = None
        else:
            status, code = "declined", DECLINES.get(token, "invalid_token")
        charge_id = f"ch_{uuid.uuid4().hex}"
        async with engine.begin() as conn:
            row = (
                await conn.execute(
                    text(
                        f"INSERT INTO {SCHEMA}.charge (charge_id, idempotency_key, reference, "
                        "amount, currency, status, failure_code) "
                        "VALUES (:c, :k, :r, :a, :cur, :s, :f) "
                        "ON CONFLICT (idempotency_key) DO NOTHING RETURNING charge_id"
                    ),
                    {
                        "c": charge_id,
                        "k": idempotency_key,
                        "r": reference,
                        "a": amount,
                        "cur": currency,
                        "s": status,
                        "f": code,
                    },
                )
            ).first()
            if row is None:  # a retry: the first answer stands
                record = await charge_by(conn, "idempotency_key", idempotency_key)
                assert record is not None
                await self._wait()
                return result_of(record)
            if status != "pending":
                await self._enqueue(conn, charge_event(status, charge_id, reference, code))
        if status != "declined":
            self.charges.append(
                FakeCharge(charge_id, amount, currency, reference, idempotency_key, status)
            )
        await self._wait()
        return ChargeResult(
            status=status, charge_id=None if status == "declined" else charge_id, failure_code=code
        )

    async def refund(
        self, *, charge_id: str, amount: int, currency: str, reference: str, idempotency_key: str
    ) -> RefundResult:
        engine = await self._db()
        await self._wait()
        async with engine.begin() as conn:
            # The charge's lock orders refunds of one charge, retries of this one included.
            charge = (
                await conn.execute(
                    text(
                        f"SELECT amount, currency, status, reference FROM {SCHEMA}.charge "
                        "WHERE charge_id = :c FOR UPDATE"
                    ),
                    {"c": charge_id},
                )
            ).first()
            if charge is None or charge.currency != currency or charge.status != "succeeded":
                raise ProviderError(f"the fake provider knows no {currency} charge {charge_id}")
            done = await refund_by(conn, "idempotency_key", idempotency_key)
            if done is not None:
                await self._wait()
                return RefundResult(refund_id=done.refund_id)
            already = await conn.scalar(
                text(f"SELECT coalesce(sum(amount), 0) FROM {SCHEMA}.refund WHERE charge_id = :c"),
                {"c": charge_id},
            )
            if int(already) + amount > charge.amount:
                raise ProviderError("the fake provider refuses to refund more than was charged")
            refund_id = f"re_{uuid.uuid4().hex}"
            inserted = (
                await conn.execute(
                    text(
                        f"INSERT INTO {SCHEMA}.refund (refund_id, idempotency_key, reference, "
                        "charge_id, amount, currency) VALUES (:id, :k, :r, :c, :a, :cur) "
                        "ON CONFLICT (idempotency_key) DO NOTHING RETURNING refund_id"
                    ),
                    {
                        "id": refund_id,
                        "k": idempotency_key,
                        "r": reference,
                        "c": charge_id,
                        "a": amount,
                        "cur": currency,
                    },
                )
            ).first()
            if inserted is None:  # the key was used for a refund of another charge
                raise ProviderError("the fake provider saw this idempotency key for another refund")
            event = {
                "charge_id": charge_id,
                "reference": charge.reference,
                "refund_id": refund_id,
                "refund_reference": reference,
                "amount": amount,
                "currency": currency,
            }
            await self._enqueue(conn, ("charge.refunded", event))
        self.refunds.append((charge_id, amount))
        await self._wait()
        return RefundResult(refund_id=refund_id)

    async def find_charge(self, *, reference: str) -> ChargeRecord | None:
        engine = await self._db()
        async with engine.connect() as conn:
            return await charge_by(conn, "reference", reference)

    async def find_refund(self, *, reference: str) -> RefundRecord | None:
        engine = await self._db()
        async with engine.connect() as conn:
            return await refund_by(conn, "reference", reference)

    # --- what a real provider's dashboard would offer ------------------------------------------

    async def settle_pending(
        self, reference: str, *, succeeded: bool, failure_code: str = "card_declined"
    ) -> None:
        """Decide a ``tok_pending`` charge; its webhook follows if webhooks are on."""
        engine = await self._db()
        status = "succeeded" if succeeded else "declined"
        code = None if succeeded else failure_code
        async with engine.begin() as conn:
            row = (
                await conn.execute(
                    text(
                        f"UPDATE {SCHEMA}.charge SET status = :s, failure_code = :f "
                        "WHERE reference = :r AND status = 'pending' RETURNING charge_id"
                    ),
                    {"s": status, "f": code, "r": reference},
                )
            ).first()
            if row is not None:
                await self._enqueue(conn, charge_event(status, row.charge_id, reference, code))

    async def refunded_total(self, charge_ids: list[str]) -> int:
        """What the ledger has refunded of these charges (tests compare it with our records)."""
        engine = await self._db()
        async with engine.connect() as conn:
            total = await conn.scalar(
                text(
                    f"SELECT coalesce(sum(amount), 0) FROM {SCHEMA}.refund "
                    "WHERE charge_id = ANY(:ids)"
                ),
                {"ids": charge_ids},
            )
        return int(total)

    async def ledger_charges(self, references: list[str]) -> list[FakeCharge]:
        """Every charge in the shared ledger with one of these references, any process's."""
        engine = await self._db()
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    f"SELECT charge_id, amount, currency, reference, idempotency_key, status "
                    f"FROM {SCHEMA}.charge WHERE reference = ANY(:refs) ORDER BY created_at"
                ),
                {"refs": references},
            )
            return [FakeCharge(*row) for row in rows.all()]

    # --- webhooks ----------------------------------------------------------------------------

    async def _enqueue(self, conn: AsyncConnection, event: tuple[str, dict[str, Any]]) -> None:
        if self.webhooks is None:
            return
        kind, data = event
        event_id = f"evt_{uuid.uuid4().hex}"
        payload = {"id": event_id, "type": kind, "data": data}
        await conn.execute(
            text(
                f"INSERT INTO {SCHEMA}.webhook (event_id, payload, due_at) "
                "VALUES (:id, CAST(:p AS jsonb), now() + make_interval(secs => :delay))"
            ),
            {"id": event_id, "p": json.dumps(payload), "delay": self.webhooks.delay_ms / 1000},
        )

    async def deliver_due_webhooks(self, limit: int = 50) -> int:
        """Post every due webhook once (a failure is retried later with backoff)."""
        target, http = self.webhooks, self._http
        if target is None or http is None:
            raise RuntimeError("start() the fake with webhooks first")
        engine = await self._db()
        order = "DESC" if target.reorder else "ASC"
        delivered = 0
        async with engine.begin() as conn:
            rows = (
                await conn.execute(
                    text(
                        f"SELECT id, payload, attempts, "
                        f"due_at <= now() - make_interval(secs => :hold) AS overdue "
                        f"FROM {SCHEMA}.webhook WHERE delivered_at IS NULL AND due_at <= now() "
                        f"ORDER BY due_at {order}, id {order} LIMIT :n FOR UPDATE SKIP LOCKED"
                    ),
                    {"n": limit, "hold": target.delay_ms / 1000},
                )
            ).all()
            if target.reorder and len(rows) == 1 and not rows[0].overdue:
                # Out of order needs company: a lone event waits one more delay for a later one.
                return 0
            for row in rows:
                error = await self._post(row.payload)
                if error is None:
                    delivered += 1
                    sql = "UPDATE {s}.webhook SET delivered_at = now() WHERE id = :id"
                    params: dict[str, Any] = {"id": row.id}
                else:
                    sql = (
                        "UPDATE {s}.webhook SET attempts = attempts + 1, last_error = :e, "
                        "due_at = now() + make_interval(secs => :wait) WHERE id = :id"
                    )
                    params = {"id": row.id, "e": error[:500], "wait": min(2**row.attempts, 60)}
                await conn.execute(text(sql.format(s=SCHEMA)), params)
        return delivered

    async def _post(self, payload: dict[str, Any]) -> str | None:
        if self.webhooks is None or self._http is None:
            return "webhooks are off"
        body = json.dumps(payload).encode()
        headers = {
            SIGNATURE_HEADER: sign(self.webhooks.secret, body),
            "Content-Type": "application/json",
        }
        import httpx

        try:
            response = await self._http.post(self.webhooks.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"
        return None if response.is_success else f"HTTP {response.status_code}"

    async def _send_webhooks(self) -> None:
        while True:
            try:
                if not await self.deliver_due_webhooks():
                    await asyncio.sleep(self.poll_interval)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("fake_provider_webhooks_failed")
                await asyncio.sleep(1.0)

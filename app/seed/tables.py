"""One row generator per seeded table, in dependency order (``TABLES``).

A table is seeded only when it exists. Rows come from the world (``world.py``) so that the
tables agree with each other: every order's user is an ``auth_user``, every item's product a
``payments_product``, every paid order has a succeeded payment, analytics' signups and checkouts
are exactly those users and orders, and every clicked product id is a real product. Generated
columns (``payments_product.search_vector``) are never written: the server computes them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from app.seed import events
from app.seed.copy import Record, TableSpec, in_parallel
from app.seed.world import World

# argon2id of DEMO_PASSWORD with auth's default cost (m=65536, t=3, p=4), computed once with
# app.modules.auth.passwords.Passwords: hashing per user would cost ~0.1 s each. Every seeded
# user shares it. Login verifies it whatever the current cost settings, and rehashes it when
# they differ.
DEMO_PASSWORD = "demo-Password-1"  # noqa: S105 - published demo credentials for seeded data
DEMO_PASSWORD_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$vQyigOUKWApEwsEwdkxhqQ"  # noqa: S105 - the demo password's
    "$uUqkPQuTLgeiI8n/eYJqFseFMwUDM2JzPjLojSbiMbQ"
)


def auth_user_rows(world: World) -> Iterator[Record]:
    for u in world.users:
        changed = u.verified_at or u.signed_up_at
        yield (
            u.id,
            u.email,
            DEMO_PASSWORD_HASH,
            u.role,
            u.verified_at,
            u.signed_up_at,
            u.signed_up_at,
            changed,
        )


def payments_product_rows(world: World) -> Iterator[Record]:
    for p in world.products:
        yield (p.id, p.name, p.description, p.price, p.currency, True, p.created_at, p.created_at)


def payments_order_rows(world: World) -> Iterator[Record]:
    for o in world.orders:
        yield (o.id, o.user_id, o.status, o.currency, o.amount, o.refunded, o.at, o.updated_at)


def payments_order_item_rows(world: World) -> Iterator[Record]:
    for o in world.orders:
        for position, i in enumerate(o.items):
            yield (
                i.id,
                o.id,
                position,
                i.product_id,
                i.product_name,
                i.unit_amount,
                i.quantity,
                i.line_amount,
            )


def payments_payment_rows(world: World) -> Iterator[Record]:
    for o in world.orders:
        yield (
            o.payment_id,
            o.id,
            o.payment_status,
            o.amount,
            o.currency,
            o.refunded,
            o.charge_id,
            o.failure_code,
            o.at,
            o.updated_at,
        )


def payments_refund_rows(world: World) -> Iterator[Record]:
    for o in world.orders:
        if (r := o.refund) is not None:
            key, provider_id = f"seed-{r.id}", f"re_{r.id.hex}"
            yield (r.id, o.payment_id, o.id, key, r.amount, o.currency, None, provider_id, r.at)


def analytics_signup_rows(world: World) -> Iterator[Record]:
    for u in world.users:
        yield (u.id, u.signed_up_at, u.verified_at)


def analytics_checkout_rows(world: World) -> Iterator[Record]:
    for o in world.orders:
        # A refund does not undo the checkout's outcome: analytics keeps 'paid'.
        yield (o.id, o.user_id, "paid" if o.paid else "failed", o.amount, o.currency, o.at)


async def analytics_event_chunks(world: World, first_id: int) -> AsyncIterator[tuple[bytes, int]]:
    """Days of events made in parallel processes, in day order, framed as one binary COPY."""
    pools = events.event_pools(world, first_id)
    stream = in_parallel(
        events.event_day,
        pools,
        len(pools.quotas),
        header=events.COPY_HEADER,
        trailer=events.COPY_TRAILER,
    )
    counts = iter([0, *pools.quotas, 0])  # the header and the trailer hold no rows
    async for chunk in stream:
        yield chunk, next(counts)


_AUDIT = ("created_at", "updated_at")

TABLES: tuple[TableSpec, ...] = (
    TableSpec(
        "auth_user",
        (
            "id",
            "email",
            "password_hash",
            "role",
            "email_verified_at",
            "password_changed_at",
            *_AUDIT,
        ),
        lambda w: len(w.users),
        rows=auth_user_rows,
    ),
    TableSpec(
        "payments_product",
        ("id", "name", "description", "price_amount", "currency", "active", *_AUDIT),
        lambda w: len(w.products),
        rows=payments_product_rows,
    ),
    TableSpec(
        "payments_order",
        ("id", "user_id", "status", "currency", "total_amount", "refunded_amount", *_AUDIT),
        lambda w: len(w.orders),
        rows=payments_order_rows,
    ),
    TableSpec(
        "payments_order_item",
        (
            "id",
            "order_id",
            "position",
            "product_id",
            "product_name",
            "unit_amount",
            "quantity",
            "line_amount",
        ),
        lambda w: sum(len(o.items) for o in w.orders),
        rows=payments_order_item_rows,
    ),
    TableSpec(
        "payments_payment",
        (
            "id",
            "order_id",
            "status",
            "amount",
            "currency",
            "refunded_amount",
            "provider_charge_id",
            "failure_code",
            *_AUDIT,
        ),
        lambda w: len(w.orders),
        rows=payments_payment_rows,
    ),
    TableSpec(
        "payments_refund",
        (
            "id",
            "payment_id",
            "order_id",
            "idempotency_key",
            "amount",
            "currency",
            "reason",
            "provider_refund_id",
            "created_at",
        ),
        lambda w: sum(o.refund is not None for o in w.orders),
        rows=payments_refund_rows,
    ),
    TableSpec(
        "analytics_signup",
        ("user_id", "signed_up_at", "verified_at"),
        lambda w: len(w.users),
        rows=analytics_signup_rows,
    ),
    TableSpec(
        "analytics_checkout",
        ("order_id", "user_id", "outcome", "amount", "currency", "at"),
        lambda w: len(w.orders),
        rows=analytics_checkout_rows,
    ),
    TableSpec(
        "analytics_event",
        events.COLUMNS,
        lambda w: w.preset.events,
        chunks=analytics_event_chunks,
    ),
)

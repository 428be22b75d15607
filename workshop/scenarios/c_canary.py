"""C: 200 OK for every request, a stale price for 8% of users -> a correctness canary with alerts.

One server with the product-page cache on and the fault ``payments.catalog_freshness_skipped``
(8% of users keyed by id keep their cached page whatever the price becomes), and a demo-mode
Prometheus with the repository's rules (`make monitor DEMO=1`). Each round, the room's shoppers
read a few products, the merchant changes their prices, the shoppers read them again: the
scenario (which knows the bug) counts the old prices served with a 200, and probes ``/readyz``.

- before: no canary. Health is green, no request fails, no alert fires.
- after: ``python -m app worker`` runs the canary (an admin changes the canary product's price,
  its users read it back). The fault is lifted until the canary's first clean check, then
  switched on again: the time to detect runs from that switch to ``CanaryPayloadMismatch``
  firing.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from dataclasses import dataclass, field

import httpx

from app.seed.tables import DEMO_PASSWORD
from app.seed.world import ADMIN_EMAIL
from tools.pgstack import free_port
from workshop import servers
from workshop.core import Context, Figure, Outcome, compare
from workshop.scenarios import c_watch
from workshop.scenarios.a_coupling import fault_cli

FAULT = "payments.catalog_freshness_skipped"
RATIO = 0.08
DETECT_CEILING = 180.0  # the claim: the alert fires within 3 minutes

FIGURES = (
    Figure("readyz", "/readyz answered 200", "%", lower_is_better=False),
    Figure("errors", "requests answered 5xx", "%"),
    Figure("stale", "product pages with an old price (200)", "%"),
    Figure("alert", "canary alert fired by the round's end", "%", lower_is_better=False),
)


def in_slice(user_id: str, ratio: float = RATIO) -> bool:
    """Whether the fault hits this user (app/platform/faults.py's keyed slice, recomputed)."""
    return zlib.crc32(f"{FAULT}:{user_id}".encode()) % 10_000 < ratio * 10_000


@dataclass
class Room:
    base_url: str
    admin: str
    shoppers: dict[str, str]  # email -> token
    products: list[str]
    round_no: int = 0
    tally: dict[str, list[float]] = field(default_factory=dict)


async def _login(client: httpx.AsyncClient, email: str) -> str:
    """Waiting out the hashing bulkhead's 503s (a room logs in at once)."""
    for _ in range(60):
        resp = await client.post("/v1/auth/login", json={"email": email, "password": DEMO_PASSWORD})
        if resp.status_code != 503:
            resp.raise_for_status()
            token: str = resp.json()["access_token"]
            return token
        await asyncio.sleep(0.5)
    raise RuntimeError(f"login of {email} kept answering 503")


async def _room(base_url: str, shoppers: list[str], products: list[str]) -> Room:
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        admin = await _login(client, ADMIN_EMAIL)
        gate = asyncio.Semaphore(2)  # a hash per core: more would only queue or get 503s

        async def one(email: str) -> str:
            async with gate:
                return await _login(client, email)

        tokens = dict(zip(shoppers, await asyncio.gather(*map(one, shoppers)), strict=True))
    return Room(base_url, admin, tokens, products)


async def _round(room: Room) -> dict[str, float]:
    """Shoppers read, the merchant changes the prices, shoppers read again; /readyz all along."""
    room.round_no += 1
    statuses: list[int] = []
    ready: list[int] = []
    limits = httpx.Limits(max_connections=16)
    async with httpx.AsyncClient(base_url=room.base_url, timeout=60, limits=limits) as client:

        async def page(token: str, product: str) -> dict[str, object]:
            resp = await client.get(
                f"/v1/products/{product}", headers={"Authorization": f"Bearer {token}"}
            )
            statuses.append(resp.status_code)
            return resp.json() if resp.status_code == 200 else {}

        ready.append((await client.get("/readyz")).status_code)
        await asyncio.gather(*(page(t, p) for t in room.shoppers.values() for p in room.products))
        written: dict[str, object] = {}
        for n, product in enumerate(room.products):
            price = 1000 + (room.round_no * 7 + n) % 9000
            resp = await client.patch(
                f"/v1/products/{product}",
                json={"price_amount": price},
                headers={"Authorization": f"Bearer {room.admin}"},
            )
            statuses.append(resp.status_code)
            written[product] = resp.json()["price_amount"] if resp.status_code == 200 else None
        await asyncio.sleep(0.5)  # the change reaches every process and the replica
        pairs = [(t, p) for t in room.shoppers.values() for p in room.products]
        ready.append((await client.get("/readyz")).status_code)
        got = await asyncio.gather(*(page(t, p) for t, p in pairs))
        old = [
            pair
            for pair, g in zip(pairs, got, strict=True)
            if g.get("price_amount") != written[pair[1]]
        ]
        if old:
            # Still old a second later: the cache's, not a replica a moment behind (a loaded
            # machine's replica may be), the same second look the canary takes.
            await asyncio.sleep(1.0)
            again = await asyncio.gather(*(page(t, p) for t, p in old))
            old = [
                pair
                for pair, g in zip(old, again, strict=True)
                if g.get("price_amount") != written[pair[1]]
            ]
        reads, stale = len(pairs), len(old)
        ready.append((await client.get("/readyz")).status_code)
    return {
        "readyz": 100 * sum(s == 200 for s in ready) / len(ready),
        "errors": 100 * sum(s >= 500 for s in statuses) / len(statuses),
        "stale": 100 * stale / max(1, reads),
        "probes": float(len(ready)),
        "requests": float(len(statuses)),
    }


def _member_ids(ctx: Context, emails: list[str]) -> dict[str, str]:
    quoted = ",".join("'" + e.replace("'", "''") + "'" for e in emails)
    rows = ctx.stack.primary.psql(
        f"SELECT email, id FROM auth_user WHERE email IN ({quoted})",  # noqa: S608 - seed data
        db=ctx.db,
    )
    return dict(line.split("|") for line in rows.splitlines() if "|" in line)


def _members(ctx: Context, count: int) -> list[str]:
    return ctx.stack.primary.psql(
        "SELECT email FROM auth_user WHERE role = 'member' AND email_verified_at IS NOT NULL "  # noqa: S608 - an int
        f"ORDER BY email LIMIT {int(count)}",
        db=ctx.db,
    ).split()


def _products(ctx: Context, count: int) -> list[str]:
    return ctx.stack.primary.psql(
        "SELECT id FROM payments_product WHERE active AND name <> 'Canary probe' "  # noqa: S608 - an int
        f"ORDER BY id LIMIT {int(count)}",
        db=ctx.db,
    ).split()


class CatalogCanary:
    id = "C"
    title = "A correctness canary on a stale cache"
    problem = "200 OK for every request, but a stale price for 8% of users"
    fix = "a correctness canary (write, read back as users, compare) with alerts that say where"

    def run(self, ctx: Context) -> Outcome:
        # Logins cost a password hash each: the quick run logs in fewer.
        shopper_count, canary_count = (12, 12) if ctx.quick else (30, 40)
        members = _members(ctx, shopper_count + canary_count)
        shoppers, canary_users = members[:shopper_count], members[shopper_count:]
        ids = _member_ids(ctx, members)
        products = _products(ctx, 2 if ctx.quick else 4)
        before: dict[str, list[float]] = {}
        after: dict[str, list[float]] = {}
        facts: dict[str, object] = {}
        ctx.progress("C: starting the app server (cache on) and a demo-mode Prometheus")
        with servers.serving(ctx, {"C-app": {"env": {}}}) as running:
            server = running["C-app"]
            port = free_port()
            app = server.base_url.removeprefix("http://")
            with c_watch.prometheus(ctx, app, f"127.0.0.1:{port}") as prom:
                room = asyncio.run(_room(server.base_url, shoppers, products))
                fault_cli(ctx, "on", FAULT, "--ratio", str(RATIO))
                c_watch.wait_for_fault(server.base_url, FAULT, RATIO)
                with c_watch.AlertWatch(prom) as watch:
                    ctx.progress(f"C: before: the fault on, no canary (alerts: {prom}/alerts)")
                    for _ in range(ctx.rounds):
                        _keep(before, asyncio.run(_round(room)), watch)
                        ctx.advance(1)
                    facts["alerts_firing_before"] = watch.names_firing() or "none"
                    env = c_watch.canary_env(
                        server.base_url, ADMIN_EMAIL, canary_users, DEMO_PASSWORD
                    )
                    with c_watch.worker(ctx, port, env) as worker:
                        facts.update(self._after(ctx, room, worker, watch, after))
                facts.update(c_watch.prometheus_view(prom))
            fault_cli(ctx, "off", FAULT)
        facts["canary_users_in_the_slice"] = (
            f"{sum(in_slice(ids[e]) for e in canary_users)} of {len(canary_users)}"
        )
        facts["shoppers_in_the_slice"] = (
            f"{sum(in_slice(ids[e]) for e in shoppers)} of {len(shoppers)}"
        )
        return self._outcome(ctx, before, after, facts)

    def _after(
        self,
        ctx: Context,
        room: Room,
        worker: c_watch.Worker,
        watch: c_watch.AlertWatch,
        after: dict[str, list[float]],
    ) -> dict[str, object]:
        """The canary on; the fault lifted until its first clean check, then on again: timed."""
        ctx.progress("C: after: the canary's first clean check (fault lifted)")
        fault_cli(ctx, "off", FAULT)
        c_watch.wait_first_check(worker)
        fault_cli(ctx, "on", FAULT, "--ratio", str(RATIO))
        switched = time.monotonic()
        # The room's rounds start once the server runs with it (the canary's clock is running).
        c_watch.wait_for_fault(room.base_url, FAULT, RATIO)
        ctx.progress("C: after: the fault on again, the canary watching")
        rounds = 0
        while rounds < ctx.rounds or (
            watch.first(c_watch.ALERT, "firing") is None
            and time.monotonic() - switched < DETECT_CEILING
        ):
            _keep(after, asyncio.run(_round(room)), watch)
            rounds += 1
            if rounds <= ctx.rounds:
                ctx.advance(1)
        fired = watch.first(c_watch.ALERT, "firing")
        pending = watch.first(c_watch.ALERT, "pending")
        alert = watch.firing.get(c_watch.ALERT, {})
        return {
            "time_to_detect_s": round(fired - switched, 1) if fired else None,
            "time_to_pending_s": round(pending - switched, 1) if pending else None,
            "alert_summary": alert.get("annotations", {}).get("summary"),
            "alert_description": alert.get("annotations", {}).get("description"),
            "alert_labels": {
                k: v for k, v in alert.get("labels", {}).items() if k in ("route", "severity")
            },
            "canary_checks": worker.checks(),
            "after_rounds": rounds,
        }

    def _outcome(
        self,
        ctx: Context,
        before: dict[str, list[float]],
        after: dict[str, list[float]],
        facts: dict[str, object],
    ) -> Outcome:
        outcome = Outcome(
            self.id,
            self.title,
            "the cache's bug, no canary (health checks, RED metrics and their alerts)",
            "the same, with the correctness canary and its alert",
            ctx.rounds,
            compare(FIGURES, before, after),
            facts=facts,
        )
        ttd = facts.get("time_to_detect_s")
        probes = before.get("readyz", []) + after.get("readyz", [])
        errors = before.get("errors", []) + after.get("errors", [])
        outcome.checks = {
            "the canary alert fired within 3 minutes of the bug": (
                isinstance(ttd, float) and ttd <= DETECT_CEILING
            ),
            "/readyz answered 200 throughout": bool(probes) and min(probes) == 100,
            "no request answered 5xx throughout": bool(errors) and max(errors) == 0,
            "old prices were served with a 200 (the bug was live)": max(
                before.get("stale", [0]) + after.get("stale", [0])
            )
            > 0,
            "no canary alert before the canary ran": facts["alerts_firing_before"] == "none"
            or c_watch.ALERT not in str(facts["alerts_firing_before"]),
        }
        if facts.get("alert_summary"):
            outcome.notes = [
                f"alert {c_watch.ALERT} {facts['alert_labels']}: {facts['alert_summary']}",
                f"{facts['alert_description']}",
                f"time to detect: {ttd} s from the fault switched on to the alert firing",
            ]
        return outcome


def _keep(
    seen: dict[str, list[float]], values: dict[str, float], watch: c_watch.AlertWatch
) -> None:
    values["alert"] = 100.0 if c_watch.ALERT in watch.firing else 0.0
    for key, value in values.items():
        seen.setdefault(key, []).append(value)

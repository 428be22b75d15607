"""A: a bug in the notification logic crashes checkout -> modules talk through the outbox.

One server mounts both checkouts: the God service's (``/workshop/checkout-coupled``, the receipt
rendered and sent inside the request, workshop/godservice.py) and the real one (``/v1/checkout``,
``OrderPaid`` into the outbox, the receipt sent by notifications' listener). With the fault
``notifications.receipt_render_fails`` on, the same purchases go through each, round after round.
Then the fault is lifted and every receipt the outbox held back must arrive, once.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from workshop import servers
from workshop.core import Context, Figure, Outcome, compare, interleaved, percentile
from workshop.traffic import Shopper, Step, drive, seed_facts, shoppers

FAULT = "notifications.receipt_render_fails"
ROOT = Path(__file__).resolve().parents[2]

FIGURES = (
    Figure("success", "checkouts answered 2xx", "%", lower_is_better=False),
    Figure("p50", "checkout p50", "ms"),
    Figure("p99", "checkout p99", "ms"),
)

_RECEIPTS = """
SELECT count(*), count(*) FILTER (WHERE d.status = 'done'), count(n.id),
       count(*) FILTER (WHERE d.attempts > 1)
FROM platform_outbox_event e
JOIN platform_event_delivery d ON d.event_id = e.id AND d.listener = 'notifications.send_receipt'
LEFT JOIN notifications_notification n
       ON n.source_key = 'delivery:' || d.id::text AND n.template = 'order_receipt'
WHERE e.name = 'payments.order_paid' AND e.published_at >= '{since}'
"""
_PAID = "SELECT count(*) FROM payments_order WHERE status = 'paid' AND created_at >= '{since}'"


def _checkout(path: str) -> Step:
    async def step(client: httpx.AsyncClient, s: Shopper) -> tuple[str, httpx.Response]:
        body = {
            "items": [{"product_id": s.product(), "quantity": 1}],
            "payment_token": "tok_success",
        }
        headers = {**s.headers(), "Idempotency-Key": uuid.uuid4().hex}
        return f"POST {path}", await client.post(path, json=body, headers=headers)

    return step


def fault_cli(ctx: Context, *args: str) -> str:
    """The room switches the fault with the same command the facilitator types."""
    env = {**os.environ, "APP_ENV": "workshop", "APP_DATABASE_URL": ctx.primary_url}
    done = subprocess.run(
        [sys.executable, "-m", "app", "fault", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout.strip()


def wait_for_fault(base_url: str, ratio: float, timeout: float = 120.0) -> None:
    wanted = re.compile(rf'^fault_active\{{name="{re.escape(FAULT)}"\}} {ratio:g}(\.0)?$', re.M)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if wanted.search(httpx.get(base_url + "/metrics", timeout=10).text):
            return
        time.sleep(0.2)
    raise RuntimeError(f"the server did not pick up {FAULT} at {ratio} within {timeout:.0f}s")


def boundary_lesson() -> list[str]:
    """Put the God service's checkout inside payments and ask import-linter: which contract?"""
    with tempfile.TemporaryDirectory(prefix="workshop-a-") as tmp:
        tree = Path(tmp)
        shutil.copytree(ROOT / "app", tree / "app", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
        shutil.copy(ROOT / "workshop/godservice.py", tree / "app/modules/payments/coupled.py")
        lint = Path(sys.executable).with_name("lint-imports")
        result = subprocess.run(
            [str(lint), "--no-cache"], cwd=tree, capture_output=True, text=True, timeout=300
        )
    broken = re.findall(r"^(.+?) BROKEN", result.stdout, re.M)
    culprits = sorted(set(re.findall(r"app\.modules\.payments\.coupled -> \S+", result.stdout)))
    return broken + culprits


class OutboxIsolation:
    id = "A"
    title = "A notification bug and checkout"
    problem = "a bug in the notification logic crashes checkout"
    fix = "modules talk through the outbox; a listener's failure stays in its module"

    def run(self, ctx: Context) -> Outcome:
        facts = seed_facts(ctx.stack, ctx.db)
        per_round = 10 if ctx.quick else 30
        env = {
            "APP_FAULTS_REFRESH_SECONDS": "0.2",
            "APP_EVENTS_POLL_INTERVAL_SECONDS": "0.2",
            "APP_EVENTS_BACKOFF_BASE_SECONDS": "0.2",
            "APP_EVENTS_BACKOFF_MAX_SECONDS": "1",
            "APP_EVENTS_MAX_ATTEMPTS": "10000",
            "APP_EMAIL_BACKEND": "memory",
        }
        since = ctx.stack.primary.psql("SELECT now()", db=ctx.db)
        ctx.progress("A: starting the server with both checkouts")
        specs: dict[str, dict[str, object]] = {
            "shop": {"env": env, "variants": ("coupled-checkout",)}
        }
        with servers.serving(ctx, specs) as running:
            base = running["shop"].base_url
            people = asyncio.run(shoppers(base, facts, 4, seed=1))
            ctx.progress(f"A: {fault_cli(ctx, 'on', FAULT)}")
            wait_for_fault(base, 1.0)

            def measure(path: str) -> dict[str, float]:
                log = asyncio.run(drive(base, people, lambda s: _checkout(path), per_round))
                ctx.advance(1)
                lat = log.latencies()
                return {
                    "success": 100 * log.share(lambda s: 200 <= s.status < 300),
                    "p50": percentile(lat, 50),
                    "p99": percentile(lat, 99),
                    "server_errors": float(sum(s.status >= 500 for s in log.samples)),
                }

            before, after = interleaved(
                ctx.rounds,
                lambda: measure("/workshop/checkout-coupled"),
                lambda: measure("/v1/checkout"),
            )
            ctx.progress(f"A: {fault_cli(ctx, 'off', FAULT)}; waiting for the held receipts")
            receipts = self._receipts_after_recovery(ctx, since)
        outcome = Outcome(
            self.id,
            self.title,
            "the God service's checkout (receipt inline)",
            "the real checkout (receipt through the outbox)",
            ctx.rounds,
            compare(FIGURES, before, after),
        )
        paid = int(ctx.stack.primary.psql(_PAID.format(since=since), db=ctx.db))
        outcome.facts = {
            "checkouts_per_round": per_round,
            "coupled_5xx": sum(before["server_errors"]),
            "outbox_5xx": sum(after["server_errors"]),
            "orders_paid": paid,
            "receipts_delivered": receipts["delivered"],
            "receipts_retried_during_fault": receipts["retried"],
            "lint_imports_on_the_coupled_code": "; ".join(boundary_lesson()),
        }
        success = outcome.comparison("success")
        outcome.checks = {
            "the coupled checkout fails while the bug is on": success.before.median < 100,
            "the outbox checkout succeeds every time": min(success.after.values) == 100,
            "every paid order's receipt delivered exactly once after the fix": (
                receipts["deliveries"] == paid == receipts["delivered"]
            ),
            "import-linter refuses the coupled code": "independent"
            in outcome.facts["lint_imports_on_the_coupled_code"],
        }
        return outcome

    def _receipts_after_recovery(self, ctx: Context, since: str) -> dict[str, int]:
        deadline = time.monotonic() + 180
        while True:
            total, done, delivered, retried = map(
                int, ctx.stack.primary.psql(_RECEIPTS.format(since=since), db=ctx.db).split("|")
            )
            if done == total or time.monotonic() > deadline:
                return {
                    "deliveries": total,
                    "done": done,
                    "delivered": delivered,
                    "retried": retried,
                }
            time.sleep(0.5)

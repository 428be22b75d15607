"""The notifications domain's business metrics.

- ``notifications_created_total{template}``: inbox notifications created.
- ``notification_emails_total{template,outcome}``: email attempts (``sent``, ``failed``,
  ``skipped`` when the user turned that category off).
"""

from __future__ import annotations

from app.platform.observability.registry import counter

NOTIFICATIONS_CREATED = counter(
    "notifications_created_total", "Inbox notifications created.", ["template"]
)
EMAILS = counter(
    "notification_emails_total",
    "Notification email attempts by outcome (sent, failed, skipped).",
    ["template", "outcome"],
)

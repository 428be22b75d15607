"""The notifications domain's business metrics.

- ``notifications_created_total{template}``: inbox notifications created.
- ``notification_emails_total{template,outcome}``: email attempts (``sent``, ``failed``,
  ``skipped`` when the user turned that category off).
"""

from __future__ import annotations

from prometheus_client import Counter

NOTIFICATIONS_CREATED = Counter(
    "notifications_created_total", "Inbox notifications created.", ["template"]
)
EMAILS = Counter(
    "notification_emails_total",
    "Notification email attempts by outcome (sent, failed, skipped).",
    ["template", "outcome"],
)

"""auth's business metrics.

- ``auth_signups_total{stage}``: ``started`` at signup, ``verified`` at email verification; their
  ratio is the signup completion rate.
- ``auth_logins_total{outcome}``: ``success``, ``invalid_credentials``, ``unverified``,
  ``rate_limited``.
"""

from __future__ import annotations

from app.platform.observability.registry import counter

SIGNUPS = counter("auth_signups_total", "Signups by stage (started, verified)", ["stage"])
LOGINS = counter("auth_logins_total", "Login attempts by outcome", ["outcome"])

for _stage in ("started", "verified"):
    SIGNUPS.labels(stage=_stage)
for _outcome in ("success", "invalid_credentials", "unverified", "rate_limited"):
    LOGINS.labels(outcome=_outcome)

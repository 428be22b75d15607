"""The ports every module may be handed by the composition root: a clock and an id source.

Production binds the system clock and ``uuid4``; a test hands fixed ones through the same door
(``create_app(settings, adapters=...)`` or a service's constructor).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]
IdSource = Callable[[], uuid.UUID]


def system_clock() -> datetime:
    """Now, in UTC (aware)."""
    return datetime.now(UTC)


def random_ids() -> uuid.UUID:
    return uuid.uuid4()

"""The transactional outbox: typed events, publishing, the listener registry, the dispatcher.

A module publishes an event (declared in its ``interface.py``) with ``publish(session, event)``
inside the transaction of its change; ``app/bootstrap.py`` subscribes listeners; a ``Dispatcher``
(in the app process and in ``python -m app worker``) delivers each event to each listener
separately, at least once, retrying with backoff. See docs/events.md.
"""

from app.platform.events.outbox import EventSink, Outbox, publish
from app.platform.events.registry import REGISTRY, ListenerRegistry
from app.platform.events.types import Delivery, Event, Listener, Retry

__all__ = [
    "REGISTRY",
    "Delivery",
    "Event",
    "EventSink",
    "Listener",
    "ListenerRegistry",
    "Outbox",
    "Retry",
    "publish",
]

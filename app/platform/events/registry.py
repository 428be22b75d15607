"""The listener registry: which listeners are subscribed to which event type."""

from __future__ import annotations

from app.platform.events.types import E, Event, Handler, Listener


class ListenerRegistry:
    """Subscriptions by event type. ``app/bootstrap.py`` fills the process-wide ``REGISTRY``."""

    def __init__(self) -> None:
        self._by_name: dict[str, Listener[Event]] = {}
        self._by_event: dict[tuple[str, int], list[Listener[Event]]] = {}

    def subscribe(
        self,
        event: type[E],
        handler: Handler[E],
        *,
        name: str,
        module: str | None = None,
        timeout_seconds: float | None = None,
        max_attempts: int | None = None,
    ) -> Listener[E]:
        """Subscribe ``handler`` to ``event`` as listener ``name`` (``<module>.<handler>``).

        The name is what delivery rows, metrics and the CLI know the listener by: keep it stable.
        Subscribing the same name to the same event again replaces the handler (an app rebuilt
        with other settings); the same name on another event is a mistake and raises.
        """
        if "." not in name:
            raise ValueError(f"listener name {name!r} must look like '<module>.<handler>'")
        listener = Listener(
            name=name,
            module=module or name.split(".", 1)[0],
            event=event,
            handler=handler,
            timeout_seconds=timeout_seconds,
            max_attempts=max_attempts,
        )
        existing = self._by_name.get(name)
        if existing is not None and existing.event is not event:
            raise ValueError(
                f"listener {name!r} is already subscribed to {existing.event.name}"
                f" v{existing.event.version}"
            )
        key = (event.name, event.version)
        subscribers = [x for x in self._by_event.get(key, []) if x.name != name]
        generic: Listener[Event] = listener  # type: ignore[assignment]
        self._by_event[key] = [*subscribers, generic]
        self._by_name[name] = generic
        return listener

    def listeners_for(self, event: type[Event]) -> list[Listener[Event]]:
        return list(self._by_event.get((event.name, event.version), ()))

    def get(self, name: str) -> Listener[Event] | None:
        return self._by_name.get(name)

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)


REGISTRY = ListenerRegistry()

"""The listener of locust's request event that keeps every request of the window as a Sample."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from loadtest.samples import Sample


class Recorder:
    """The listener of locust's request event: one ``Sample`` per request, while recording."""

    def __init__(self) -> None:
        self.samples: list[Sample] = []
        self.recording = False

    def __call__(
        self,
        request_type: str,
        name: str,
        response_time: float,
        response: Any = None,
        context: Mapping[str, Any] | None = None,
        exception: BaseException | None = None,
        start_time: float | None = None,
        **_: Any,
    ) -> None:
        if not self.recording or not context or "route" not in context:
            return
        status = int(getattr(response, "status_code", 0) or 0)
        expected: Iterable[int] = context.get("expect", ())
        unexpected = status not in expected
        error = ""
        if status == 0:
            error = type(exception).__name__ if exception else "no response"
        elif unexpected:
            error = f"unexpected {status}"
        sent = start_time if start_time is not None else time.time()
        self.samples.append(
            Sample(
                method=request_type,
                route=context["route"],
                journey=context["journey"],
                step=context["step"],
                intended=context["intended"],
                sent=sent,
                elapsed=response_time / 1000,
                status=status,
                error=error,
                unexpected=unexpected,
            )
        )

"""One arrival of the open model: a visitor's requests, each with its intended send time.

A visit's first request is meant to go at its arrival time; each later one at the end of the
previous answer plus a think time. The request goes through locust's ``FastHttpSession`` and
locust's request event, whose listener (``Recorder``) turns it into a ``Sample``: the intended
time, the journey and step ride in the request's ``context``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlencode

import gevent
from locust.contrib.fasthttp import FastHttpSession

from loadtest.samples import Sample


class Unexpected(Exception):
    """An answer the journey cannot go on from (its sample is marked unexpected)."""


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


class Visit:
    """The requests of one journey, paced by the open model's clock."""

    def __init__(
        self,
        session: FastHttpSession,
        journey: str,
        arrival: float,
        rng: random.Random,
        think: float,
    ) -> None:
        self.session = session
        self.journey = journey
        self.next_at = arrival
        self.rng = rng
        self.think_mean = think

    def think(self, scale: float = 1.0) -> None:
        """The pause before the next request (the next one's intended time moves on)."""
        self.next_at = time.time() + self.rng.uniform(0.5, 1.5) * self.think_mean * scale

    def call(
        self,
        method: str,
        path: str,
        *,
        route: str,
        step: str,
        expect: tuple[int, ...] = (200,),
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        think: bool = True,
    ) -> Any:
        """Send one request at its intended time; raise ``Unexpected`` on an unexpected answer."""
        wait = self.next_at - time.time()
        if wait > 0:
            gevent.sleep(wait)
        url = f"{path}?{urlencode(params)}" if params else path
        context = {
            "route": route,
            "journey": self.journey,
            "step": step,
            "intended": self.next_at,
            "expect": expect,
        }
        response = self.session.request(
            method,
            url,
            name=f"{method} {route}",
            json=json,
            headers=dict(headers or {}),
            context=context,
        )
        if think:
            self.think()
        else:
            self.next_at = time.time()
        if response.status_code not in expect:
            raise Unexpected(f"{method} {route}: {response.status_code}")
        return response

"""One arrival of the open model: a visitor's requests, each with its intended send time.

A visit's first request is meant to go at its arrival time; each later one at the end of the
previous answer plus a think time. The request goes through locust's ``FastHttpSession`` and
locust's request event, whose listener (``Recorder``) turns it into a ``Sample``: the intended
time, the journey and step ride in the request's ``context`` (``loadtest/recorder.py``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import gevent
from locust.contrib.fasthttp import FastHttpSession


class Unexpected(Exception):
    """An answer the journey cannot go on from (its sample is marked unexpected)."""


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
        # The request on the wire (its context and send time), for a visit cut at the end.
        self.in_flight: tuple[dict[str, Any], float] | None = None

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
            "method": method,
            "route": route,
            "journey": self.journey,
            "step": step,
            "intended": self.next_at,
            "expect": expect,
        }
        self.in_flight = (context, time.time())
        response = self.session.request(
            method,
            url,
            name=f"{method} {route}",
            json=json,
            headers=dict(headers or {}),
            context=context,
        )
        self.in_flight = None
        if think:
            self.think()
        else:
            self.next_at = time.time()
        if response.status_code not in expect:
            raise Unexpected(f"{method} {route}: {response.status_code}")
        return response

"""A lean HTTP/1.1 keep-alive load generator: a fixed number of GETs over N connections.

Written on uvloop protocols (no streams, no coroutine per request) so that one core of it can
keep one uvicorn worker saturated; it prints one JSON line: requests, seconds, req/s, p50/p99.

    python -m bench.loadgen http://127.0.0.1:8000/healthz --requests 20000 --connections 32
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
from urllib.parse import urlsplit

import uvloop

_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.I)


class _Load:
    def __init__(self, total: int) -> None:
        self.remaining = total
        self.latencies: list[float] = []
        self.failures = 0


class _Connection(asyncio.Protocol):
    def __init__(self, load: _Load, request: bytes, done: asyncio.Future[None]) -> None:
        self.load, self.request, self.done = load, request, done
        self.buffer = b""
        self.sent_at = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self._next()

    def _next(self) -> None:
        if self.load.remaining <= 0:
            self.transport.close()
            if not self.done.done():
                self.done.set_result(None)
            return
        self.load.remaining -= 1
        self.sent_at = time.perf_counter()
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        found = _LENGTH.search(self.buffer, 0, end + 2)
        size = end + 4 + (int(found.group(1)) if found else 0)
        if len(self.buffer) < size:
            return
        if not self.buffer.startswith(b"HTTP/1.1 200"):
            self.load.failures += 1
        self.load.latencies.append(time.perf_counter() - self.sent_at)
        self.buffer = self.buffer[size:]
        self._next()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


async def run(url: str, requests: int, connections: int) -> dict[str, float]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    loop = asyncio.get_running_loop()
    load = _Load(requests)
    started = time.perf_counter()
    waits = []
    for _ in range(connections):
        done: asyncio.Future[None] = loop.create_future()
        await loop.create_connection(lambda d=done: _Connection(load, request, d), host, port)
        waits.append(done)
    await asyncio.gather(*waits)
    seconds = time.perf_counter() - started
    latencies = sorted(load.latencies)
    if len(latencies) != requests or load.failures:
        raise SystemExit(f"{len(latencies)} of {requests} answered, {load.failures} not 200")
    return {
        "requests": requests,
        "seconds": seconds,
        "rps": requests / seconds,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    print(json.dumps(uvloop.run(run(args.url, args.requests, args.connections))))


if __name__ == "__main__":
    main()

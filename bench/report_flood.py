"""The report flood of ``make bench-bulkhead``, in a process of its own.

Its clients request the funnel report as fast as they are answered, so that its own work never
delays the client measuring checkout. The parent writes a line on stdin to stop it; it then
waits for the reports in flight and prints their outcomes as one JSON line.

    python -m bench.report_flood '{"base": URL, "token": T, "params": {...}, "clients": N,
                                   "honor": true}'
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
FUNNEL = "/v1/analytics/reports/funnel"


async def _flood_main(
    base: str, token: str, params: dict[str, str], clients: int, honor: bool
) -> None:
    """Request reports until a line arrives on stdin; then drain and print the outcomes."""
    outcomes: Counter[int] = Counter()
    stop = asyncio.Event()

    async def client_loop(client: httpx.AsyncClient) -> None:
        while not stop.is_set():
            try:
                response = await client.get(FUNNEL, params=params)
                outcomes[response.status_code] += 1
                if response.status_code == 503:
                    # Dashboards and report jobs back off as told; --no-retry-after floods anyway.
                    wait = float(response.headers.get("retry-after", "1")) if honor else 0.005
                    await asyncio.sleep(wait)
            except httpx.HTTPError:
                outcomes[0] += 1

    limits = httpx.Limits(max_connections=clients)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(
        base_url=base, timeout=120, limits=limits, headers=headers
    ) as client:
        tasks = [asyncio.create_task(client_loop(client)) for _ in range(clients)]
        print("started", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        stop.set()
        await asyncio.gather(*tasks)  # the reports in flight finish before the next phase
    print(json.dumps({str(k): v for k, v in outcomes.items()}), flush=True)


class Flood:
    """The flood process of one phase: started, then stopped and drained."""

    def __init__(
        self, base: str, token: str, params: dict[str, str], clients: int, honor: bool
    ) -> None:
        spec = json.dumps(
            {"base": base, "token": token, "params": params, "clients": clients, "honor": honor}
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.report_flood", spec],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "started":
            raise SystemExit("the flood process did not start")

    def stop(self) -> dict[str, int]:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write("stop\n")
        self.proc.stdin.flush()
        outcomes: dict[str, int] = json.loads(self.proc.stdout.readline())
        self.proc.wait(timeout=60)
        return outcomes


if __name__ == "__main__":
    spec = json.loads(sys.argv[1])
    asyncio.run(
        _flood_main(spec["base"], spec["token"], spec["params"], spec["clients"], spec["honor"])
    )

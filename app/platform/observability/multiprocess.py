"""Serving with several workers while /metrics still adds up: the multiprocess metrics folder.

With ``PROMETHEUS_MULTIPROC_DIR`` set every worker writes its metrics to files there and a scrape
merges them. The folder must start empty (files of a previous run would be added in), and the
live gauges of a worker that exited must be dropped (``mark_process_dead``): ``serve()`` wipes
the folder before any worker starts and runs uvicorn's supervisor with a sweep that, on every
tick, removes the live-gauge files of every process that is no longer one of its workers. The
sweep catches workers that crashed, were killed or were replaced, which no hook inside the dying
worker could.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

from prometheus_client.multiprocess import mark_process_dead

from app.platform.observability.registry import multiprocess_dir

_LIVE_GAUGE_FILE = re.compile(r"^gauge_live[a-z]+_(\d+)\.db$")


def reset_dir(path: str) -> None:
    """Empty (or create) the metrics folder: a new server starts counting from zero."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    for entry in folder.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def sweep_dead(path: str, alive: set[int]) -> list[int]:
    """Drop the live gauges of every process not in ``alive``; the pids dropped."""
    dead = set()
    for name in os.listdir(path):
        found = _LIVE_GAUGE_FILE.match(name)
        if found and int(found.group(1)) not in alive:
            dead.add(int(found.group(1)))
    for pid in dead:
        mark_process_dead(pid, path)  # type: ignore[no-untyped-call]
    return sorted(dead)


def serve(app: str, **options: Any) -> None:
    """``uvicorn.run(app, factory=True, **options)``, multiprocess-metrics aware."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    found = multiprocess_dir()
    if found is not None:
        reset_dir(found)
    workers = options.get("workers") or 1
    if found is None or workers <= 1 or options.get("reload"):
        uvicorn.run(app, factory=True, **options)
        return
    path: str = found

    class Supervisor(Multiprocess):
        def keep_subprocess_alive(self) -> None:
            super().keep_subprocess_alive()  # replaces dead workers first
            sweep_dead(path, {os.getpid(), *(p.pid for p in self.processes if p.pid)})

        def join_all(self) -> None:
            super().join_all()
            sweep_dead(path, {os.getpid()})  # every worker has exited

    config = uvicorn.Config(app, factory=True, **options)
    sock = config.bind_socket()
    try:
        Supervisor(config, sockets=[sock]).run()
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()

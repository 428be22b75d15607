"""`python -m app worker --heartbeat-file`: the liveness signal the compose health check reads."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.e2e.conftest import ROOT
from tools.pgstack import Stack


def test_worker_touches_its_heartbeat_and_stops_on_sigterm(migrated: Stack, tmp_path: Path) -> None:
    beat = tmp_path / "heartbeat"
    env = {
        **os.environ,
        "APP_ENV": "test",
        "APP_DATABASE_URL": migrated.primary_url,
        "APP_REPLICA_DATABASE_URL": migrated.replica_url,
        "APP_EMAIL_BACKEND": "memory",
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "app", "worker", "--heartbeat-file", str(beat)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while not beat.exists():
            assert worker.poll() is None, worker.stderr.read().decode() if worker.stderr else ""
            assert time.monotonic() < deadline, "no heartbeat within 60s"
            time.sleep(0.1)
        # Fresh, as the compose health check requires (younger than 30 s).
        assert time.time() - beat.stat().st_mtime < 30
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()

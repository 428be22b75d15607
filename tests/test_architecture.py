"""The module diagram cannot drift: docs/architecture.md is what the code says today."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from app import architecture

ROOT = Path(__file__).resolve().parents[1]


def _check(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", "architecture", "--check"],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_committed_diagram_is_a_fresh_one() -> None:
    fresh = architecture.render(architecture.collect())
    assert architecture.DIAGRAM.read_text() == fresh, "run: python -m app architecture"
    # It says what the code does: the outbox edges and the interface imports are there.
    assert "notifications -->|interface| payments" in fresh
    assert 'payments -. "OrderPaid, PaymentFailed, RefundIssued" .-> notifications' in fresh


def test_a_new_import_of_an_interface_makes_the_diagram_stale(tmp_path: Path) -> None:
    for folder in ("app", "docs"):
        shutil.copytree(
            ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    assert _check(tmp_path).returncode == 0
    planted = tmp_path / "app/modules/payments/repository.py"
    planted.write_text(
        planted.read_text() + "\nfrom app.modules.auth import interface as _auth  # noqa\n"
    )
    stale = _check(tmp_path)
    assert stale.returncode == 1
    assert "out of date" in stale.stderr
    subprocess.run(
        [sys.executable, "-m", "app", "architecture"], cwd=tmp_path, check=True, timeout=120
    )
    assert "payments -->|interface| auth" in (tmp_path / "docs/architecture.md").read_text()

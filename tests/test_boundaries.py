"""The import-linter contracts bite: a planted forbidden import breaks the named contract."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "app", tmp_path / "app", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _plant(path: Path, line: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    existing = path.read_text() if path.exists() else '"""planted by a test."""\n'
    path.write_text(existing + "\n" + line + "\n")


def test_contracts_hold_on_the_real_tree() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_importing_another_modules_service_breaks_independence(tree: Path) -> None:
    _plant(tree / "app/modules/payments/service.py", "VALUE = 1")
    _plant(tree / "app/modules/auth/service.py", "from app.modules.payments import service  # noqa")
    result = _lint(tree)
    assert result.returncode != 0
    assert "Modules are independent; only interface.py crosses a boundary BROKEN" in result.stdout
    assert "app.modules.auth.service -> app.modules.payments.service" in result.stdout


def test_importing_another_modules_interface_is_allowed(tree: Path) -> None:
    _plant(
        tree / "app/modules/auth/service.py", "from app.modules.payments import interface  # noqa"
    )
    result = _lint(tree)
    assert result.returncode == 0, result.stdout


def test_fastapi_in_a_service_breaks_the_forbidden_contract(tree: Path) -> None:
    _plant(tree / "app/modules/payments/service.py", "import fastapi  # noqa")
    result = _lint(tree)
    assert result.returncode != 0
    assert "Domain code does not know the web framework BROKEN" in result.stdout
    assert "app.modules.payments.service -> fastapi" in result.stdout


def test_platform_importing_a_module_breaks_the_tiers(tree: Path) -> None:
    _plant(tree / "app/platform/errors.py", "from app.modules.auth import interface  # noqa")
    result = _lint(tree)
    assert result.returncode != 0
    assert "Tiers: composition root above modules above platform BROKEN" in result.stdout

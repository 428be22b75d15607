"""A fifth module in one command: the scaffold writes a module that passes every check."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tools import scaffold

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run(tree: Path, *command: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(command), cwd=tree, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    skip = shutil.ignore_patterns("__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache")
    for folder in ("app", "tests", "migrations", "docs", "tools", "workshop", "bench", "loadtest"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=skip)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


@pytest.mark.parametrize("name", ["auth", "9lives", "my-module", "class", "Inventory", "platform"])
def test_refuses_a_name_that_exists_or_is_not_an_identifier(name: str) -> None:
    with pytest.raises(scaffold.ScaffoldRefused):
        scaffold.validate(ROOT, name)


def test_the_command_refuses_without_writing_anything(tree: Path) -> None:
    before = sorted(p.relative_to(tree) for p in tree.rglob("*"))
    result = _run(tree, sys.executable, "-m", "app", "new-module", "my-module")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "refused: 'my-module' is not a module name" in result.stderr
    assert sorted(p.relative_to(tree) for p in tree.rglob("*")) == before


@pytest.mark.slow
# A ceiling for a busy machine: it lints and type-checks a whole copy and starts its own stack.
@pytest.mark.timeout(1200)
def test_a_scaffolded_module_passes_lint_boundaries_and_its_tests(tree: Path) -> None:
    made = _run(tree, sys.executable, "-m", "app", "new-module", "inventory")
    assert made.returncode == 0, made.stdout + made.stderr
    package = tree / "app/modules/inventory"
    for room in scaffold.ROOMS:
        assert (package / f"{room}.py").is_file(), room
    assert '"app.modules.inventory"' in (tree / "pyproject.toml").read_text()
    assert "inventory_router" in (tree / "app/bootstrap.py").read_text()
    assert list((tree / "migrations/versions").glob("*_inventory_tables.py"))
    assert (tree / "docs/inventory.md").read_text().count("## Runbook") == 1
    assert (tree / "tests/unit/inventory/test_service.py").is_file()

    for check in (
        [str(BIN / "ruff"), "check", "."],
        [str(BIN / "ruff"), "format", "--check", "."],
        [str(BIN / "lint-imports"), "--no-cache"],
        # The deployable and the new module's tests: the rest of tests/ is the scaffold's input.
        [str(BIN / "mypy"), "--no-incremental", "app", "tests/modules/inventory"],
    ):
        result = _run(tree, *check)
        assert result.returncode == 0, f"{check[0]}:\n{result.stdout}{result.stderr}"
    lint = _run(tree, str(BIN / "lint-imports"), "--no-cache")
    assert "0 broken" in lint.stdout

    # The new module's own tests, the migrations (models match them) and the diagram, on a
    # throwaway primary and replica of the copy's own.
    tests = _run(
        tree,
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "tests/modules/inventory",
        "tests/unit/inventory",
        "tests/test_migrations.py",
        "tests/test_architecture.py",
        timeout=600,
    )
    assert tests.returncode == 0, tests.stdout[-5000:] + tests.stderr[-2000:]
    assert " passed" in tests.stdout
    assert "inventory" in (tree / "docs/architecture.md").read_text()

    again = _run(tree, sys.executable, "-m", "app", "new-module", "inventory")
    assert again.returncode == 2
    assert "exists already" in again.stderr

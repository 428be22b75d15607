"""The import-linter contracts bite: a planted forbidden import breaks the named contract."""

from __future__ import annotations

import importlib.util
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


def test_every_planted_file_is_one_the_app_imports() -> None:
    # A violation planted in a file Python never imports (a module.py shadowed by a module/
    # package, say) would prove nothing: each is the file its module name resolves to.
    for planted in PLANTED_IN:
        name = planted.removesuffix(".py").replace("/", ".")
        spec = importlib.util.find_spec(name)
        assert spec is not None, planted
        assert spec.origin == str(ROOT / planted), planted


PLANTED_IN = (
    "app/modules/auth/service/sessions.py",
    "app/modules/payments/service/checkout.py",
    "app/modules/payments/repository.py",
    "app/platform/errors.py",
    "app/platform/db/base.py",
    "app/seed/tables.py",
    "app/platform/faults.py",
)


def test_importing_another_modules_service_breaks_independence(tree: Path) -> None:
    _plant(
        tree / "app/modules/auth/service/sessions.py",
        "from app.modules.payments.service import checkout  # noqa",
    )
    result = _lint(tree)
    assert result.returncode != 0
    assert "Modules are independent; only interface.py crosses a boundary BROKEN" in result.stdout
    assert (
        "app.modules.auth.service.sessions -> app.modules.payments.service.checkout"
        in result.stdout
    )


def test_importing_another_modules_interface_is_allowed(tree: Path) -> None:
    _plant(
        tree / "app/modules/auth/service/sessions.py",
        "from app.modules.payments import interface  # noqa",
    )
    result = _lint(tree)
    assert result.returncode == 0, result.stdout


def test_the_framework_reached_through_the_platform_breaks_the_forbidden_contract(
    tree: Path,
) -> None:
    # Indirect, as it happens in practice: no service names FastAPI, but the error classes every
    # service raises would bring Starlette along.
    _plant(tree / "app/platform/errors.py", "import starlette.responses  # noqa")
    result = _lint(tree)
    assert result.returncode != 0
    assert "Domain code does not know the web framework BROKEN" in result.stdout
    assert "app.modules.payments.service is not allowed to import starlette" in result.stdout
    assert "app.platform.errors -> starlette" in result.stdout


def test_domain_code_loads_no_web_framework_at_run_time() -> None:
    # What import-linter cannot see: a package's __init__ runs on import of any of its modules.
    rooms = [
        f"app.modules.{module}.{room}"
        for module in ("auth", "payments", "notifications", "analytics")
        for room in ("service", "repository", "models", "interface", "listeners")
        if importlib.util.find_spec(f"app.modules.{module}.{room}") is not None
    ]
    probe = (
        "import importlib, sys\n"
        f"for name in {rooms!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'fastapi', 'starlette'}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert len(rooms) >= 16
    assert result.stdout.strip() == "[]"


def test_a_repository_importing_its_router_breaks_the_layers(tree: Path) -> None:
    _plant(
        tree / "app/modules/payments/repository.py",
        "from app.modules.payments import router  # noqa",
    )
    result = _lint(tree)
    assert result.returncode != 0
    assert "Layers inside each module BROKEN" in result.stdout
    assert "app.modules.payments.repository -> app.modules.payments.router" in result.stdout


def test_platform_importing_a_module_breaks_the_tiers(tree: Path) -> None:
    _plant(tree / "app/platform/errors.py", "from app.modules.auth import interface  # noqa")
    result = _lint(tree)
    assert result.returncode != 0
    assert "Tiers: composition root above modules above platform BROKEN" in result.stdout


def test_a_cycle_between_platform_parts_breaks_the_acyclic_contract(tree: Path) -> None:
    # The events package stands on db; db importing events closes a cycle.
    _plant(tree / "app/platform/db/base.py", "import app.platform.events.outbox  # noqa")
    result = _lint(tree)
    assert result.returncode != 0
    assert "The platform's parts do not import each other in cycles BROKEN" in result.stdout


def test_the_seed_calling_a_service_breaks_the_seed_contract(tree: Path) -> None:
    _plant(tree / "app/seed/tables.py", "from app.modules.auth import service  # noqa")
    result = _lint(tree)
    assert result.returncode != 0
    assert "The seed writes tables and calls no module's code BROKEN" in result.stdout
    assert "app.seed.tables -> app.modules.auth.service" in result.stdout


def test_a_module_importing_the_seed_breaks_the_tiers(tree: Path) -> None:
    _plant(tree / "app/modules/auth/service/sessions.py", "from app.seed import world  # noqa")
    result = _lint(tree)
    assert result.returncode != 0
    assert "Tiers: composition root above modules above platform BROKEN" in result.stdout


def test_the_app_importing_the_workshop_breaks_its_contract(tree: Path) -> None:
    shutil.copytree(
        ROOT / "workshop", tree / "workshop", ignore=shutil.ignore_patterns("__pycache__")
    )
    _plant(tree / "app/platform/faults.py", "import workshop.core  # noqa")
    result = _lint(tree)
    assert result.returncode != 0
    assert "The deployable never imports the workshop BROKEN" in result.stdout
    assert "app.platform.faults -> workshop" in result.stdout

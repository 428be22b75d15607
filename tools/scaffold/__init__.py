"""A new business module in one command: ``python -m app new-module NAME`` (``make module``).

It writes the module's rooms (the house anatomy, from ``templates/``), registers the module in
the import-linter contracts and in the composition root, adds an Alembic revision for its first
table, a test file with an HTTP test and a query budget, its guide with a runbook section, and
regenerates the module diagram, so that ``make test`` is green right after it.
"""

from __future__ import annotations

import keyword
import re
import subprocess
import sys
import tomllib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from string import Template

TEMPLATES = Path(__file__).with_name("templates")
ROOMS = (
    "__init__",
    "interface",
    "router",
    "dependencies",
    "service",
    "repository",
    "schemas",
    "models",
    "metrics",
)
# Names that would shadow the platform, a standard library module the code imports, or a room.
_RESERVED = {"platform", "modules", "main", "bootstrap", "seed", "tests", "app", *ROOMS}
_NAME = re.compile(r"[a-z][a-z0-9_]{1,30}")
_MODULE_LIST = re.compile(r'((?:^    "app\.modules\.[a-z0-9_]+",\n)+)(^\])', re.MULTILINE)


class ScaffoldRefused(ValueError):
    """The name cannot be a new module."""


@dataclass(frozen=True)
class Plan:
    root: Path
    name: str

    @property
    def package(self) -> Path:
        return self.root / "app" / "modules" / self.name

    @property
    def values(self) -> dict[str, str]:
        camel = "".join(part.capitalize() for part in self.name.split("_"))
        return {
            "name": self.name,
            "Name": camel,
            "table": f"{self.name}_item",
            "summary": f"the {self.name} domain (describe what it owns in two lines).",
        }


def validate(root: Path, name: str) -> Plan:
    if not name.isidentifier() or keyword.iskeyword(name) or not _NAME.fullmatch(name):
        raise ScaffoldRefused(
            f"{name!r} is not a module name: a lower-case Python identifier of 2 to 31 characters"
        )
    if name in _RESERVED:
        raise ScaffoldRefused(f"{name!r} is reserved")
    plan = Plan(root, name)
    if plan.package.exists():
        raise ScaffoldRefused(f"app/modules/{name} exists already")
    return plan


def _render(template: str, values: dict[str, str]) -> str:
    return Template((TEMPLATES / template).read_text()).substitute(values)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _register_contracts(plan: Plan) -> Path:
    """Add the module to every contract that lists the modules (independence, layers)."""
    path = plan.root / "pyproject.toml"
    text = path.read_text()
    entry = f'    "app.modules.{plan.name}",\n'
    updated, count = _MODULE_LIST.subn(lambda m: m.group(1) + entry + m.group(2), text)
    if count < 2:
        raise ScaffoldRefused("pyproject.toml: the contracts' module lists were not found")
    contracts = tomllib.loads(updated)["tool"]["importlinter"]["contracts"]
    listed = [c for c in contracts if f"app.modules.{plan.name}" in (c.get("modules") or [])]
    listed += [c for c in contracts if f"app.modules.{plan.name}" in (c.get("containers") or [])]
    assert len(listed) >= 2, "the module must be in the independence and layers contracts"
    path.write_text(updated)
    return path


def _register_root(plan: Plan) -> Path:
    """Mount the router and load the models in the composition root."""
    path = plan.root / "app" / "bootstrap.py"
    text = path.read_text()
    name = plan.name
    imports = list(re.finditer(r"^from app\.modules\.\S+ import .*\n", text, re.M))
    if not imports:
        raise ScaffoldRefused("app/bootstrap.py: no module import to put the router's beside")
    line = f"from app.modules.{name}.router import router as {name}_router\n"
    text = text[: imports[-1].end()] + line + text[imports[-1].end() :]
    routers = re.search(
        r"MODULE_ROUTERS: tuple\[APIRouter, \.\.\.\] = \(\n(.*?)^\)", text, re.S | re.M
    )
    models = re.search(r"^    import app\.platform\.db\.base\n", text, re.M)
    if routers is None or models is None:
        raise ScaffoldRefused("app/bootstrap.py: MODULE_ROUTERS or load_models() was not found")
    text = (
        text[: routers.end(1)]
        + f"    {name}_router,\n"
        + text[routers.end(1) : models.start()]
        + f"    import app.modules.{name}.models\n"
        + text[models.start() :]
    )
    path.write_text(text)
    return path


def _migration(plan: Plan) -> Path:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(plan.root / "migrations"))
    heads = ScriptDirectory.from_config(config).get_heads()
    if len(heads) != 1:
        raise ScaffoldRefused(f"the migrations have {len(heads)} heads; merge them first")
    now = datetime.now(UTC)
    revision = uuid.uuid4().hex[:12]
    values = {
        **plan.values,
        "revision": revision,
        "down_revision": heads[0],
        "down_revision_literal": repr(heads[0]).replace("'", '"'),
        "created": now.isoformat(sep=" ", timespec="seconds"),
    }
    file = f"{now:%Y%m%d_%H%M}_{revision}_{plan.name}_tables.py"
    return _write(
        plan.root / "migrations" / "versions" / file, _render("migration.py.tmpl", values)
    )


def create(root: Path, name: str) -> list[Path]:
    """Write the module NAME under ``root``; the paths written or changed."""
    plan = validate(root, name)
    values = plan.values
    written = [
        _write(plan.package / f"{room}.py", _render(f"{room}.py.tmpl", values)) for room in ROOMS
    ]
    tests = root / "tests" / "modules" / name
    written.append(_write(tests / "__init__.py", ""))
    written.append(_write(tests / "test_api.py", _render("test_api.py.tmpl", values)))
    # The unit layer: its use cases against fakes of their ports, no database.
    unit = root / "tests" / "unit" / name
    written.append(_write(unit / "__init__.py", ""))
    written.append(_write(unit / "test_service.py", _render("test_service.py.tmpl", values)))
    written.append(_write(root / "docs" / f"{name}.md", _render("doc.md.tmpl", values)))
    written.append(_migration(plan))
    written.append(_register_contracts(plan))
    written.append(_register_root(plan))
    _tidy(root, [p for p in written if p.suffix == ".py"])
    # The diagram is regenerated in a fresh process: this one has not imported the new module.
    subprocess.run([sys.executable, "-m", "app", "architecture"], cwd=root, check=True)
    written.append(root / "docs" / "architecture.md")
    return written


def _tidy(root: Path, files: list[Path]) -> None:
    """Sort the imports the registration added and format, when ruff is at hand."""
    ruff = Path(sys.executable).with_name("ruff")
    if not ruff.exists():
        return
    names = [str(p) for p in files]
    subprocess.run(
        [str(ruff), "check", "--select", "I", "--fix", "-q", *names], cwd=root, check=False
    )
    subprocess.run([str(ruff), "format", "-q", *names], cwd=root, check=False)

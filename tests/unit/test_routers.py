"""Routers call services only: no router reaches a repository, a session or SQLAlchemy itself.

A router takes its services from its module's dependencies (which know which session a use case
runs on), calls them and maps the result; queries, pages and cursors are the service's.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("sqlalchemy", "app.platform.db")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def reaches_past_services(path: Path) -> list[str]:
    module = path.parent.name
    own_repository = f"app.modules.{module}.repository"
    return sorted(
        name
        for name in _imports(path)
        if name == own_repository
        or name.startswith(own_repository + ".")
        or any(name == f or name.startswith(f + ".") for f in FORBIDDEN)
    )


def test_every_router_calls_services_only() -> None:
    routers = sorted((ROOT / "app/modules").glob("*/router.py"))
    assert len(routers) >= 4
    found = {p.parent.name: reaches_past_services(p) for p in routers}
    assert found == {name: [] for name in found}


def test_the_check_sees_a_router_that_queries(tmp_path: Path) -> None:
    router = tmp_path / "inventory" / "router.py"
    router.parent.mkdir()
    router.write_text(
        "from app.modules.inventory.repository import list_items\n"
        "from app.platform.db import ReadSession\n"
        "from app.modules.inventory.dependencies import Items\n"
    )
    assert reaches_past_services(router) == [
        "app.modules.inventory.repository",
        "app.modules.inventory.repository.list_items",
        "app.platform.db",
        "app.platform.db.ReadSession",
    ]

"""The unit layer: services against fakes of their ports, no database, a few seconds in all.

Everything under tests/unit/ is marked ``unit`` (``pytest -m unit``, ``make test-unit``); a test
here that asks for the database fixtures fails instead of starting PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path

import pytest

_HERE = Path(__file__).parent
_DATABASE_FIXTURES = {"pg_stack", "migrated", "app", "client"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(item.path).parents:
            item.add_marker(pytest.mark.unit)
            wanted = _DATABASE_FIXTURES & set(getattr(item, "fixturenames", ()))
            if wanted:
                raise pytest.UsageError(f"{item.nodeid}: a unit test uses {sorted(wanted)}")

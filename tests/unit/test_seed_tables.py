"""The seed writes tables by column name: each name a real column, each required one given."""

from __future__ import annotations

import dataclasses

import pytest

from app.bootstrap import load_models
from app.platform.db.base import Base
from app.seed.copy import TableSpec
from app.seed.tables import TABLES


def _problems(spec: TableSpec) -> list[str]:
    load_models()
    table = Base.metadata.tables.get(spec.name)
    if table is None:
        return [f"the seed writes {spec.name}, which no model declares"]
    problems = []
    unknown = set(spec.columns) - set(table.columns.keys())
    if unknown:
        problems.append(f"{spec.name}: columns the model does not have: {sorted(unknown)}")
    required = {
        column.name
        for column in table.columns
        if not column.nullable
        and column.default is None
        and column.server_default is None
        and column.identity is None
    }
    missing = required - set(spec.columns)
    if missing:
        problems.append(f"{spec.name}: required columns the seed leaves out: {sorted(missing)}")
    return problems


@pytest.mark.parametrize("spec", TABLES, ids=lambda spec: spec.name)
def test_a_seeded_table_matches_its_model(spec: TableSpec) -> None:
    assert _problems(spec) == []


def test_a_drifted_spec_is_caught() -> None:
    users = next(spec for spec in TABLES if spec.name == "auth_user")
    renamed = tuple("mail" if c == "email" else c for c in users.columns)
    problems = _problems(dataclasses.replace(users, columns=renamed))
    assert any("'mail'" in p for p in problems), problems
    assert any("'email'" in p for p in problems), problems

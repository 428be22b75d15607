"""Where the schema stands against the migration scripts (for /readyz and the CLI)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

REPO_ROOT = Path(__file__).resolve().parents[3]
MIGRATIONS_DIR = REPO_ROOT / "migrations"


def alembic_config(database_url: str | None = None) -> Config:
    """The Alembic configuration; ``[tool.alembic]`` in pyproject.toml holds the rest."""
    cfg = Config(toml_file=str(REPO_ROOT / "pyproject.toml"))
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if database_url:
        # Escaped: ConfigParser treats % as interpolation.
        cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


@lru_cache
def expected_heads() -> frozenset[str]:
    return frozenset(ScriptDirectory.from_config(alembic_config()).get_heads())


async def applied_heads(conn: AsyncConnection) -> frozenset[str]:
    exists = await conn.scalar(text("SELECT to_regclass('public.alembic_version') IS NOT NULL"))
    if not exists:
        return frozenset()
    rows = await conn.execute(text("SELECT version_num FROM alembic_version"))
    return frozenset(r[0] for r in rows)

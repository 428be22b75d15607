"""The command line: ``python -m app --help``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from alembic.config import Config

app = typer.Typer(
    help="The SaaS backend: serve the API, migrate the database, and operate it.",
    no_args_is_help=True,
    add_completion=False,
)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="bind address (default APP_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default APP_PORT)")] = None,
    workers: Annotated[int, typer.Option(min=1, help="worker processes")] = 1,
    reload: Annotated[bool, typer.Option(help="reload on code changes (development)")] = False,
) -> None:
    """Serve the HTTP API with uvicorn."""
    import uvicorn

    from app.platform.config import get_settings

    settings = get_settings()
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=None if reload else workers,
        reload=reload,
        log_config=None,
        proxy_headers=True,
        server_header=False,
    )


def _alembic_cfg() -> Config:
    from app.platform.config import get_settings
    from app.platform.db.migrations import alembic_config

    return alembic_config(str(get_settings().database_url))


@app.command()
def migrate(revision: Annotated[str, typer.Argument(help="target revision")] = "head") -> None:
    """Upgrade the database schema (to head by default)."""
    from alembic import command

    command.upgrade(_alembic_cfg(), revision)


@app.command()
def downgrade(
    revision: Annotated[str, typer.Argument(help="target revision, e.g. -1 or base")],
) -> None:
    """Downgrade the database schema."""
    from alembic import command

    command.downgrade(_alembic_cfg(), revision)


@app.command("db-current")
def db_current() -> None:
    """Show the revision the database is at."""
    from alembic import command

    command.current(_alembic_cfg(), verbose=False)


@app.command("seed")
def seed_command(
    preset: Annotated[str, typer.Option(help="small (200k events) or large (5M events)")] = "small",
    seed: Annotated[int, typer.Option(help="RNG seed: the same seed, the same rows")] = 1,
    end: Annotated[
        str | None, typer.Option(help="end of the seeded period, YYYY-MM-DD (default: today)")
    ] = None,
    reset: Annotated[bool, typer.Option(help="empty the seeded tables first")] = False,
) -> None:
    """Fill the database with realistic demo data via COPY (users, products, orders, events)."""
    import asyncio
    from datetime import UTC, datetime

    from app.platform.config import get_settings
    from app.seed.runner import SeedError
    from app.seed.runner import seed as run_seed
    from app.seed.world import PRESETS

    if preset not in PRESETS:
        raise typer.BadParameter(f"choose one of {', '.join(PRESETS)}", param_hint="--preset")
    until = datetime.fromisoformat(end).replace(tzinfo=UTC) if end else None
    try:
        result = asyncio.run(
            run_seed(
                str(get_settings().database_url), PRESETS[preset], seed=seed, end=until, reset=reset
            )
        )
    except SeedError as exc:
        typer.echo(f"seed: {exc}", err=True)
        raise typer.Exit(1) from exc
    for t in result.tables:
        typer.echo(
            f"{t.table:<20} {t.rows:>11,} rows in {t.seconds:7.2f} s "
            f"{t.rows_per_second:>10,.0f} rows/s"
        )


@app.command()
def openapi() -> None:
    """Print the OpenAPI document (for clients, contract tests and schemathesis)."""
    from app.main import create_app

    typer.echo(json.dumps(create_app().openapi(), indent=2))


if __name__ == "__main__":
    app()

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
    """Serve the HTTP API with uvicorn.

    With PROMETHEUS_MULTIPROC_DIR set, /metrics adds up all workers (the folder is wiped first).
    """
    from app.platform.config import get_settings
    from app.platform.observability.multiprocess import serve as serve_app

    settings = get_settings()
    serve_app(
        "app.main:create_app",
        host=host or settings.host,
        port=port or settings.port,
        workers=None if reload else workers,
        reload=reload,
        log_config=None,
        # The app writes its own access log line (with module, route and query count).
        access_log=False,
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


@app.command()
def openapi() -> None:
    """Print the OpenAPI document (for clients, contract tests and schemathesis)."""
    from app.main import create_app

    typer.echo(json.dumps(create_app().openapi(), indent=2))


if __name__ == "__main__":
    app()

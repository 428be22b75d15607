"""The command line: ``python -m app --help``."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.ext.asyncio import AsyncConnection

T = TypeVar("T")

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


@app.command()
def worker(
    concurrency: Annotated[
        int | None,
        typer.Option(min=1, help="deliveries in flight (default APP_EVENTS_CONCURRENCY)"),
    ] = None,
) -> None:
    """Run an outbox dispatcher on its own (as many as you like, beside the app's or instead)."""
    import asyncio
    import dataclasses
    import signal

    from app import bootstrap
    from app.platform.config import get_settings
    from app.platform.events.dispatcher import Dispatcher
    from app.platform.events.policy import DeliveryPolicy
    from app.platform.observability.logging import configure_logging

    settings = get_settings()
    configure_logging(settings)
    bootstrap.subscribe_listeners(settings)
    policy = DeliveryPolicy.from_settings(settings)
    if concurrency is not None:
        policy = dataclasses.replace(policy, concurrency=concurrency)

    async def main() -> None:
        dispatcher = Dispatcher(settings, policy=policy, name="worker")
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, dispatcher.stop)
        await dispatcher.run()

    asyncio.run(main())


events_app = typer.Typer(help="Operate the outbox: failed deliveries, resubmitting them.")
app.add_typer(events_app, name="events")

ListenerOption = Annotated[
    str | None, typer.Option(help="only this listener (e.g. notifications.x)")
]
EventOption = Annotated[str | None, typer.Option("--event", help="only this event type name")]
OlderOption = Annotated[
    str | None,
    typer.Option(help="only deliveries that failed longer ago than this (90s, 15m, 2h, 7d)"),
]


def _filters(listener: str | None, event: str | None, older_than: str | None) -> Any:
    from app.platform.events.admin import Filters, parse_duration

    try:
        older = parse_duration(older_than) if older_than is not None else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--older-than") from exc
    return Filters(listener=listener, event=event, older_than=older)


def _run_on_primary(work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    import asyncio

    from sqlalchemy.ext.asyncio import create_async_engine

    from app.platform.config import get_settings

    async def main() -> T:
        engine = create_async_engine(str(get_settings().database_url))
        try:
            async with engine.begin() as conn:
                return await work(conn)
        finally:
            await engine.dispose()

    return asyncio.run(main())


@events_app.command("failed")
def events_failed(
    listener: ListenerOption = None,
    event: EventOption = None,
    older_than: OlderOption = None,
    limit: Annotated[int, typer.Option(min=1)] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
) -> None:
    """List failed deliveries (oldest failure first)."""
    from app.platform.events import admin

    filters = _filters(listener, event, older_than)
    rows = _run_on_primary(lambda conn: admin.list_failed(conn, filters, limit))
    for row in rows:
        if as_json:
            typer.echo(json.dumps(dataclasses_asdict(row), default=str))
        else:
            typer.echo(
                f"{row.failed_at:%Y-%m-%d %H:%M:%S}  {row.id}  {row.listener}  "
                f"{row.event} v{row.version}  attempts={row.attempts}  {row.last_error or ''}"
            )
    if not as_json:
        typer.echo(f"{len(rows)} failed deliver{'y' if len(rows) == 1 else 'ies'}", err=True)


@events_app.command("resubmit")
def events_resubmit(
    listener: ListenerOption = None,
    event: EventOption = None,
    older_than: OlderOption = None,
) -> None:
    """Make failed deliveries pending again, with a fresh set of attempts."""
    from app.platform.events import admin

    filters = _filters(listener, event, older_than)
    count = _run_on_primary(lambda conn: admin.resubmit(conn, filters))
    typer.echo(f"resubmitted {count} deliver{'y' if count == 1 else 'ies'}")


def dataclasses_asdict(value: Any) -> dict[str, Any]:
    import dataclasses

    return dataclasses.asdict(value)


@app.command()
def openapi() -> None:
    """Print the OpenAPI document (for clients, contract tests and schemathesis)."""
    from app.main import create_app

    typer.echo(json.dumps(create_app().openapi(), indent=2))


if __name__ == "__main__":
    app()

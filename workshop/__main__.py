"""The workshop's command line: ``python -m workshop list | run A ... | run all``."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from tools.pgstack import Stack, local_stack
from workshop import report
from workshop.core import Context, Outcome, write_results
from workshop.scenarios import SCENARIOS

cli = typer.Typer(
    help="Each problem of the project shown live, before and after, with measured figures.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()


@cli.command("list")
def list_scenarios() -> None:
    """The scenarios: the problem each shows and its fix."""
    table = Table("", "problem", "fix")
    for scenario in SCENARIOS.values():
        table.add_row(scenario.id, scenario.problem, scenario.fix)
    console.print(table)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def run_scenarios(
    stack: Stack, ids: list[str], out: Path, *, rounds: int, quick: bool, db: str = "app"
) -> list[Outcome]:
    """Run the scenarios on ``stack`` (migrated and seeded); write results.json and the report."""
    unknown = [i for i in ids if i not in SCENARIOS]
    if unknown:
        raise typer.BadParameter(f"no scenario {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    meta = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "cores": os.cpu_count(),
        "load_before": _load(),
        "rounds": rounds,
        "quick": quick,
    }
    outcomes = []
    columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        for scenario_id in ids:
            scenario = SCENARIOS[scenario_id]
            task = progress.add_task(f"{scenario_id}: {scenario.title}", total=2 * rounds)
            ctx = Context(
                stack=stack,
                out=out,
                rounds=rounds,
                quick=quick,
                progress=_describer(progress, task),
                advance=_advancer(progress, task),
                db=db,
            )
            outcomes.append(scenario.run(ctx))
            progress.update(
                task, description=f"{scenario_id}: {scenario.title}", completed=2 * rounds
            )
    meta["load_after"] = _load()
    write_results(out, outcomes, meta)
    report.write(out, outcomes, meta)
    for outcome in outcomes:
        _print(outcome)
    console.print(f"results: {out / 'results.json'}   report: {out / 'report.md'}")
    return outcomes


def _describer(progress: Progress, task: TaskID) -> Callable[[str], None]:
    return lambda text: progress.update(task, description=text)


def _advancer(progress: Progress, task: TaskID) -> Callable[[float], None]:
    return lambda n: progress.advance(task, n)


def _print(outcome: Outcome) -> None:
    table = Table(*report.HEADERS, title=f"{outcome.scenario}: {outcome.title}")
    for row in report.table_rows(outcome):
        table.add_row(*row)
    console.print(table)
    for claim, held in outcome.checks.items():
        console.print(
            f"  [{'green' if held else 'red'}]{'held' if held else 'DID NOT HOLD'}[/]: {claim}"
        )
    for note in outcome.notes:
        console.print(f"  {note}", markup=False, highlight=False)


@cli.command()
def run(
    scenarios: Annotated[list[str], typer.Argument(help="letters (A ... F), or all")],
    quick: Annotated[
        bool, typer.Option(help="few rounds and requests (the test suite's run)")
    ] = False,
    rounds: Annotated[
        int | None, typer.Option(min=1, help="interleaved rounds (default 5)")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="default var/workshop/<time>")] = None,
) -> None:
    """Run scenarios on the local stack (make db, make seed): before and after, interleaved."""
    ids = (
        list(SCENARIOS)
        if [s.lower() for s in scenarios] == ["all"]
        else [s.upper() for s in scenarios]
    )
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    target = out or Path("var/workshop") / stamp
    outcomes = run_scenarios(local_stack(), ids, target, rounds=rounds or 5, quick=quick)
    if not all(o.passed for o in outcomes):
        raise typer.Exit(1)


if __name__ == "__main__":
    cli()

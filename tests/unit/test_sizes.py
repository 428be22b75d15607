"""The house's sizes hold: no file under app/ or tests/ past 400 lines, no function past 60.

A file that grows past the bound becomes a subpackage; a function, smaller named parts. The scan
is the ``ast`` of every Python file (a function from its ``def`` to its last line). ``KNOWN``
names what is still over and why; it may only shrink: an entry that is no longer over fails the
test too, so the list cannot go stale.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60
SCANNED = ("app", "tests")

# (path, function or None for the file): why it is still over the bound.
KNOWN: dict[tuple[str, str | None], str] = {
    ("app/modules/payments/repository.py", None): (
        "the catalog and checkout queries are being reworked for fewer round trips; split once "
        "that lands (one file per aggregate: catalog, keys, orders, refunds)"
    ),
    ("app/__main__.py", None): "the command line: one typer app per command group next",
    ("app/__main__.py", "worker"): "the command line: one typer app per command group next",
    ("app/seed/events.py", "event_day"): (
        "the seed's inner loop over millions of rows: its locals are its speed"
    ),
    (
        "tests/e2e/test_metrics_multiprocess.py",
        "test_two_workers_aggregate_and_dead_workers_are_dropped",
    ): "a process journey",
    (
        "tests/modules/payments/test_crash_recovery.py",
        "test_kill_9_during_300_refunds_settles_each_once",
    ): "a process journey",
    (
        "tests/modules/payments/test_worker_jobs.py",
        "test_the_worker_reconciles_and_purges_on_its_own",
    ): "a process journey",
    ("tests/monitoring/test_live.py", "live"): "the live monitoring stack's fixture",
    (
        "tests/platform/observability/test_http_series.py",
        "test_what_the_middleware_records_exposes_what_prometheus_client_would",
    ): "a comparison over every series",
}


@functools.cache
def _project() -> dict[tuple[str, str | None], int]:
    sources = [p for folder in SCANNED for p in sorted((ROOT / folder).rglob("*.py"))]
    return oversized(sources, ROOT)


def oversized(paths: Iterable[Path], root: Path) -> dict[tuple[str, str | None], int]:
    """Every file over ``MAX_FILE_LINES`` and function over ``MAX_FUNCTION_LINES``: its length."""
    found: dict[tuple[str, str | None], int] = {}
    for path in paths:
        source = path.read_text()
        where = path.relative_to(root).as_posix()
        lines = source.count("\n") + (not source.endswith("\n") and bool(source))
        if lines > MAX_FILE_LINES:
            found[(where, None)] = lines
        for node in ast.walk(ast.parse(source, filename=where)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    found[(where, node.name)] = max(length, found.get((where, node.name), 0))
    return found


def test_no_file_or_function_grows_past_the_house_sizes() -> None:
    found = _project()
    new = {k: v for k, v in found.items() if k not in KNOWN}
    assert not new, "past the sizes (split them): " + ", ".join(
        f"{path}{'' if name is None else ':' + name} ({n} lines)"
        for (path, name), n in sorted(new.items(), key=lambda kv: (kv[0][0], kv[0][1] or ""))
    )


def test_the_known_list_only_names_what_is_still_over() -> None:
    stale = sorted(k for k in KNOWN if k not in _project())
    assert not stale, f"no longer over the sizes, remove from KNOWN: {stale}"


def test_the_scan_sees_a_long_function_and_a_long_file(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    sample = tmp_path / "sample.py"
    sample.write_text(f"def long():\n{body}\n\n\ndef short():\n    pass\n" + "\n" * MAX_FILE_LINES)
    assert oversized([sample], tmp_path) == {
        ("sample.py", None): MAX_FUNCTION_LINES + 5 + MAX_FILE_LINES,
        ("sample.py", "long"): MAX_FUNCTION_LINES + 1,
    }

"""Business metrics: declared once in a module's metrics.py, scraped with everything else."""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.platform.observability.registry import counter, gauge, histogram

EXAMPLE = '''
"""Business metrics of the example domain.

- ``example_orders_placed_total{currency}``
- ``example_order_value_minor_units``
- ``example_carts_open``
"""

from app.platform.observability.registry import counter, gauge, histogram

ORDERS_PLACED = counter(
    "example_orders_placed_total", "Orders placed, by currency.", ("currency",)
)
ORDER_VALUE = histogram(
    "example_order_value_minor_units", "Order value in minor units.", buckets=(100, 1000, 10000)
)
CARTS_OPEN = gauge("example_carts_open", "Carts open right now.", multiprocess_mode="livesum")
'''


@pytest.fixture
def example_metrics(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "example_metrics.py").write_text(textwrap.dedent(EXAMPLE))
    sys.path.insert(0, str(tmp_path))
    try:
        yield "example_metrics"
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("example_metrics", None)


async def test_a_modules_metrics_file_registers_once_and_is_scraped(
    example_metrics: str, client: httpx.AsyncClient
) -> None:
    first = importlib.import_module(example_metrics)
    sys.modules.pop(example_metrics)
    again = importlib.import_module(example_metrics)  # a second import must not fail
    assert again.ORDERS_PLACED is first.ORDERS_PLACED

    first.ORDERS_PLACED.labels("EUR").inc(2)
    first.ORDER_VALUE.observe(2500)
    first.CARTS_OPEN.inc()
    scraped = (await client.get("/metrics")).text
    assert 'example_orders_placed_total{currency="EUR"} 2.0' in scraped
    assert 'example_order_value_minor_units_bucket{le="10000.0"} 1.0' in scraped
    assert "example_carts_open 1.0" in scraped


def test_a_clashing_declaration_is_refused() -> None:
    counter("clash_things_total", "Things.", ("kind",))
    with pytest.raises(ValueError, match="already declared as a Counter"):
        counter("clash_things_total", "Things.", ("other",))
    with pytest.raises(ValueError, match="already declared"):
        histogram("clash_things_total", "Things.")


def test_naming_and_multiprocess_mode_are_required() -> None:
    with pytest.raises(ValueError, match="must end in _total"):
        counter("orders_placed", "Orders.")
    with pytest.raises(TypeError):
        gauge("queue_depth", "Depth.")  # type: ignore[call-arg]

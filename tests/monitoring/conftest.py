"""Fixtures of the monitoring tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.monitoring.stack import Prometheus, prometheus


@pytest.fixture(scope="session")
def empty_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """A real Prometheus that scrapes nothing: its query API is the PromQL parser."""
    folder = tmp_path_factory.mktemp("prometheus-empty")
    with prometheus(folder, {"global": {"scrape_interval": "1m"}}) as prom:
        yield prom

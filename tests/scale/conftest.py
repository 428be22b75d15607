"""A PgBouncer of the tests' own in front of the session's primary and replica."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.helpers import require_tool
from tools.pgstack import Stack, free_port
from tools.pooler import Pooler

# Few server connections for many clients: two clients' statements then share a server
# connection all the time, which is where names, caches and session settings collide.
POOL_SIZE = 3


@contextmanager
def running_pooler(stack: Stack, **options: object) -> Iterator[Pooler]:
    """tools/pooler.py's PgBouncer on a free port, in a folder the postgres user can reach."""
    require_tool("pgbouncer", "Debian/Ubuntu: apt-get install pgbouncer")
    root = Path(tempfile.mkdtemp(prefix="pooler-test-"))
    pooler = Pooler.for_stack(stack, root, free_port())
    for name, value in options.items():
        setattr(pooler, name, value)
    try:
        with pooler:
            yield pooler
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def bouncer(migrated: Stack) -> Iterator[Pooler]:
    with running_pooler(migrated, pool_size=POOL_SIZE, reserve_pool_size=0) as pooler:
        yield pooler

"""The garbage collector of a server process: tuned once startup is done, as settings say."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from app.main import create_app
from app.platform.config import Settings
from app.platform.process import tune_garbage_collector
from tests.helpers import started


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored_gc")
def test_threshold_raised_and_startup_frozen() -> None:
    _, middle, oldest = gc.get_threshold()
    survivor = [object()]  # alive when startup ends: out of every generation's passes
    assert any(o is survivor for o in gc.get_objects())

    tune_garbage_collector(freeze=True, gen0_threshold=12_345)

    assert gc.get_threshold() == (12_345, middle, oldest)
    assert gc.get_freeze_count() > 0
    assert not any(o is survivor for o in gc.get_objects())


@pytest.mark.usefixtures("restored_gc")
def test_zero_and_false_leave_python_alone() -> None:
    before = gc.get_threshold()
    tune_garbage_collector(freeze=False, gen0_threshold=0)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


@pytest.mark.usefixtures("restored_gc")
async def test_app_startup_applies_the_settings(settings: Settings) -> None:
    application = create_app(
        settings.model_copy(update={"gc_freeze": True, "gc_gen0_threshold": 23_456})
    )
    assert gc.get_freeze_count() == 0
    async with started(application):
        assert gc.get_threshold()[0] == 23_456
        assert gc.get_freeze_count() > 0

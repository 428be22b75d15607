"""Replica settings: one URL or a list of them, and the label each replica gets."""

from __future__ import annotations

import pytest

from app.platform.config import Settings
from app.platform.db.replica import replica_names

ONE = "postgresql+asyncpg://app:app@10.0.0.1:5432/app"
TWO = "postgresql+asyncpg://app:app@10.0.0.2:5432/app"


@pytest.fixture(autouse=True)
def _no_app_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("APP_REPLICA_DATABASE_URL", "APP_REPLICA_DATABASE_URLS"):
        monkeypatch.delenv(variable, raising=False)


def _settings() -> Settings:
    return Settings(_env_file=None)


def test_the_single_setting_is_a_list_of_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_REPLICA_DATABASE_URL", ONE)
    assert _settings().replica_urls == (ONE,)
    monkeypatch.setenv("APP_REPLICA_DATABASE_URL", "")
    assert _settings().replica_urls == ()


def test_a_comma_separated_list_wins_and_its_first_stands_for_the_single_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("APP_REPLICA_DATABASE_URLS", f" {ONE} , {TWO},")
    settings = _settings()
    assert settings.replica_urls == (ONE, TWO)
    assert str(settings.replica_database_url) == ONE
    # Repeating the first in the single setting (compose does) is consistent.
    monkeypatch.setenv("APP_REPLICA_DATABASE_URL", ONE)
    assert _settings().replica_urls == (ONE, TWO)


def test_two_settings_that_disagree_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_REPLICA_DATABASE_URLS", f"{ONE},{TWO}")
    monkeypatch.setenv("APP_REPLICA_DATABASE_URL", TWO)
    with pytest.raises(ValueError, match="APP_REPLICA_DATABASE_URLS"):
        _settings()


def test_a_bad_url_in_the_list_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_REPLICA_DATABASE_URLS", f"{ONE},not-a-url")
    with pytest.raises(ValueError, match="replica_database_urls"):
        _settings()


def test_each_replica_is_labelled_by_host_and_port() -> None:
    assert replica_names([ONE, TWO]) == ["10.0.0.1:5432", "10.0.0.2:5432"]
    # Two databases of one server, and the same URL twice, still get a label each.
    same_server = [ONE, ONE.replace("/app", "/other")]
    assert replica_names(same_server) == ["10.0.0.1:5432/app", "10.0.0.1:5432/other"]
    assert replica_names([ONE, ONE]) == ["10.0.0.1:5432/app#1", "10.0.0.1:5432/app#2"]
    assert replica_names(["postgresql+asyncpg://u:p@db-ro/app"]) == ["db-ro:5432"]

"""Settings: every one documented in .env.example; no default secrets outside development."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.platform.config import Settings

ROOT = Path(__file__).resolve().parents[2]
STRONG = "s" * 40


def test_env_example_lists_every_setting_and_parses() -> None:
    example = (ROOT / ".env.example").read_text()
    names = set(re.findall(r"^(APP_[A-Z0-9_]+)=", example, flags=re.M))
    expected = {f"APP_{name.upper()}" for name in Settings.model_fields}
    assert names == expected
    # The example itself is a valid configuration.
    settings = Settings(_env_file=ROOT / ".env.example")  # type: ignore[call-arg]
    assert settings.env == "development"
    assert settings.replica_database_url is not None


def test_empty_replica_url_means_no_replica(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_REPLICA_DATABASE_URL", "")
    assert Settings(_env_file=None).replica_database_url is None  # type: ignore[call-arg]


@pytest.mark.parametrize("env", ["staging", "production"])
def test_refuses_default_secrets_outside_development(env: str) -> None:
    with pytest.raises(ValidationError) as err:
        Settings(_env_file=None, env=env)  # type: ignore[call-arg]
    assert "APP_SECRET_KEY" in str(err.value)
    assert "APP_METRICS_TOKEN" in str(err.value)
    assert "APP_PAYMENTS_WEBHOOK_SECRET" in str(err.value)
    with pytest.raises(ValidationError, match="shorter than 32"):
        Settings(_env_file=None, env=env, secret_key="short", metrics_token="m" * 20)  # type: ignore[call-arg]


def test_production_starts_with_real_secrets() -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        env="production",
        secret_key=STRONG,
        metrics_token="m" * 32,
        payments_webhook_secret="w" * 32,
    )
    assert settings.json_logs is True
    assert Settings(_env_file=None).json_logs is False  # type: ignore[call-arg]

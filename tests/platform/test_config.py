"""Settings: every one documented in .env.example; no default secrets outside development."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

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
    settings = Settings(_env_file=ROOT / ".env.example")
    assert settings.env == "development"
    assert settings.replica_database_url is not None


def test_empty_replica_url_means_no_replica(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_REPLICA_DATABASE_URL", "")
    assert Settings(_env_file=None).replica_database_url is None


@pytest.mark.parametrize("env", ["staging", "production"])
def test_refuses_default_secrets_outside_development(env: str) -> None:
    with pytest.raises(ValidationError) as err:
        Settings(_env_file=None, env=env)
    assert "APP_SECRET_KEY" in str(err.value)
    assert "APP_METRICS_TOKEN" in str(err.value)
    assert "APP_PAYMENTS_WEBHOOK_SECRET" in str(err.value)
    with pytest.raises(ValidationError, match="shorter than 32"):
        Settings(_env_file=None, env=env, secret_key="short", metrics_token="m" * 20)


def test_a_staging_demo_starts_with_real_secrets_and_safe_parts() -> None:
    settings = Settings(
        _env_file=None,
        env="staging",
        secret_key=STRONG,
        metrics_token="m" * 32,
        payments_webhook_secret="w" * 32,
        payments_allow_fake_provider=True,
        email_backend="smtp",
        public_base_url="https://demo.example.com",
    )
    assert settings.json_logs is True
    assert Settings(_env_file=None).json_logs is False


def _safe(**overrides: object) -> dict[str, Any]:
    """A production configuration that passes every rule; each test breaks one."""
    values: dict[str, Any] = {
        "env": "production",
        "secret_key": STRONG,
        "metrics_token": "m" * 32,
        "payments_webhook_secret": "w" * 32,
        "payments_provider": "fake",
        "email_backend": "smtp",
        "public_base_url": "https://shop.example.com",
    }
    values.update(overrides)
    return values


def _refusal(**overrides: object) -> str:
    with pytest.raises(ValidationError) as err:
        Settings(_env_file=None, **_safe(**overrides))
    return str(err.value)


def test_the_fake_provider_is_refused_in_production_even_when_allowed() -> None:
    assert "APP_PAYMENTS_PROVIDER=fake" in _refusal()
    assert "APP_PAYMENTS_PROVIDER=fake" in _refusal(payments_allow_fake_provider=True)


def test_the_fake_provider_is_refused_in_staging_unless_allowed_for_a_demo() -> None:
    assert "APP_PAYMENTS_PROVIDER=fake" in _refusal(env="staging")
    demo = Settings(_env_file=None, **_safe(env="staging", payments_allow_fake_provider=True))
    assert demo.payments_provider == "fake"


def test_an_unknown_provider_is_refused_everywhere() -> None:
    with pytest.raises(ValidationError, match="payments_provider"):
        Settings(_env_file=None, env="development", payments_provider="paypal")


@pytest.mark.parametrize("backend", ["console", "memory"])
@pytest.mark.parametrize("env", ["staging", "production"])
def test_console_and_memory_email_are_refused_outside_development(env: str, backend: str) -> None:
    problem = _refusal(env=env, payments_allow_fake_provider=True, email_backend=backend)
    assert f"APP_EMAIL_BACKEND={backend}" in problem
    assert "APP_PAYMENTS_PROVIDER" not in problem or env == "production"


@pytest.mark.parametrize(
    "url",
    [
        "http://shop.example.com",
        "https://127.0.0.1:8000",
        "https://localhost",
        "https://app.localhost",
        "https://[::1]:8443",
        "https://0.0.0.0",
        "https://127.8.9.10",
        "shop.example.com",
    ],
)
def test_public_base_url_must_be_https_and_not_loopback_outside_development(url: str) -> None:
    problem = _refusal(env="staging", payments_allow_fake_provider=True, public_base_url=url)
    assert "APP_PUBLIC_BASE_URL" in problem
    # Development keeps its loopback default.
    assert Settings(_env_file=None).public_base_url.startswith("http://127.0.0.1")


@pytest.mark.parametrize("name", ["secret_key", "metrics_token", "payments_webhook_secret"])
def test_every_secret_is_at_least_32_characters_outside_development(name: str) -> None:
    problem = _refusal(env="staging", payments_allow_fake_provider=True, **{name: "x" * 31})
    assert f"APP_{name.upper()} is shorter than 32 characters" in problem
    # 32 is enough.
    Settings(
        _env_file=None,
        **_safe(env="staging", payments_allow_fake_provider=True, **{name: "x" * 32}),
    )


def test_every_secret_setting_is_checked() -> None:
    """A secret added later is covered by the length rule without anyone remembering to."""
    from pydantic import SecretStr

    from app.platform.config_safety import EXTERNALLY_ISSUED_SECRETS

    secrets = {
        name
        for name, field in Settings.model_fields.items()
        if SecretStr in (getattr(field.annotation, "__args__", None) or (field.annotation,))
    }
    assert {"secret_key", "metrics_token", "payments_webhook_secret"} <= secrets
    for name in secrets - EXTERNALLY_ISSUED_SECRETS:
        problem = _refusal(env="staging", payments_allow_fake_provider=True, **{name: "y" * 8})
        assert f"APP_{name.upper()} is shorter than 32" in problem


def test_the_checkout_lease_outlasts_the_provider_timeout() -> None:
    with pytest.raises(ValidationError, match="LEASE_SECONDS must be longer"):
        Settings(
            _env_file=None,
            payments_provider_timeout_seconds=10,
            payments_idempotency_lease_seconds=5,
        )

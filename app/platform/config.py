"""Settings from the environment (prefix ``APP_``); ``.env.example`` lists every one."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, PostgresDsn, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["development", "test", "staging", "production"]

# Defaults that make a fresh clone run; refused outside development and test.
DEV_SECRET_KEY = "dev-insecure-secret-key-change-me-before-deploying-0123456789abcdef"  # noqa: S105
DEV_METRICS_TOKEN = "dev-insecure-metrics-token"  # noqa: S105
_DEV_DATABASE_URL = "postgresql+asyncpg://app:app@127.0.0.1:55432/app"
_DEV_REPLICA_URL = "postgresql+asyncpg://app:app@127.0.0.1:55433/app"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="APP_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        # An empty value means "not set" for the optional settings (APP_REPLICA_DATABASE_URL=).
        env_parse_none_str="",
    )

    env: Environment = "development"
    service_name: str = "saas-backend"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool | None = Field(
        default=None, description="JSON logs; default: on everywhere but development"
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)

    database_url: PostgresDsn = PostgresDsn(_DEV_DATABASE_URL)
    replica_database_url: PostgresDsn | None = PostgresDsn(_DEV_REPLICA_URL)
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
    db_pool_timeout_seconds: float = Field(default=5.0, gt=0)
    db_connect_timeout_seconds: float = Field(default=3.0, gt=0)
    db_statement_timeout_ms: int = Field(default=30_000, ge=0)
    db_echo: bool = False
    db_n_plus_one_threshold: int = Field(
        default=5, ge=2, description="one statement shape run this often per request is an N+1"
    )
    db_n_plus_one_strict: bool = Field(
        default=False, description="raise on an N+1 instead of counting and warning (tests)"
    )

    secret_key: SecretStr = SecretStr(DEV_SECRET_KEY)
    metrics_token: SecretStr = SecretStr(DEV_METRICS_TOKEN)
    jwt_issuer: str = "saas-backend"
    jwt_audience: str = "saas-backend-api"
    access_token_ttl_seconds: int = Field(default=900, ge=60, le=3600)
    jwt_leeway_seconds: int = Field(default=10, ge=0, le=60)

    max_body_bytes: int = Field(
        default=1_048_576, ge=1, description="request bodies over this get 413"
    )
    readiness_timeout_seconds: float = Field(default=2.0, gt=0)
    access_log: bool = Field(default=True, description="one structured log line per request")

    @property
    def is_dev(self) -> bool:
        return self.env in ("development", "test")

    @property
    def json_logs(self) -> bool:
        return (self.env != "development") if self.log_json is None else self.log_json

    @model_validator(mode="after")
    def _refuse_default_secrets(self) -> Settings:
        if self.is_dev:
            return self
        defaults = {
            "APP_SECRET_KEY": self.secret_key.get_secret_value() == DEV_SECRET_KEY,
            "APP_METRICS_TOKEN": self.metrics_token.get_secret_value() == DEV_METRICS_TOKEN,
        }
        weak = [name for name, is_default in defaults.items() if is_default]
        if len(self.secret_key.get_secret_value()) < 32:
            weak.append("APP_SECRET_KEY (shorter than 32 characters)")
        if weak:
            raise ValueError(
                f"refusing to start with APP_ENV={self.env} and development secrets: "
                f"set {', '.join(weak)}"
            )
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()

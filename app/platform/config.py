"""Settings from the environment (prefix ``APP_``); ``.env.example`` lists every one."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import Field, PostgresDsn, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.platform.config_safety import (
    unsafe_adapters,
    weak_secrets,
)

Environment = Literal["development", "test", "workshop", "staging", "production"]

# Defaults that make a fresh clone run; refused outside development and test.
DEV_SECRET_KEY = "dev-insecure-secret-key-change-me-before-deploying-0123456789abcdef"  # noqa: S105
DEV_METRICS_TOKEN = "dev-insecure-metrics-token"  # noqa: S105
DEV_PAYMENTS_WEBHOOK_SECRET = "dev-insecure-payments-webhook-secret"  # noqa: S105
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
    # One replica (the common case, and the name every deployment already sets), or several:
    # APP_REPLICA_DATABASE_URLS, comma-separated, wins and the single setting becomes its first.
    replica_database_url: PostgresDsn | None = PostgresDsn(_DEV_REPLICA_URL)
    # Behind a pooler in transaction mode the URLs above reach PgBouncer; what needs a session
    # of its own (LISTEN, migrations, the command line's jobs) reaches the primary directly.
    database_direct_url: PostgresDsn | None = Field(
        default=None,
        description="the primary without a pooler (LISTEN, migrations); empty: APP_DATABASE_URL",
    )
    db_transaction_pooler: bool = Field(
        default=False,
        description="the database URLs reach a transaction-mode pooler (PgBouncer): nothing "
        "prepared outlives its transaction, statement_timeout is set per transaction",
    )
    replica_database_urls: Annotated[tuple[PostgresDsn, ...], NoDecode] = ()
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
    db_pool_timeout_seconds: float = Field(default=5.0, gt=0)
    db_connect_timeout_seconds: float = Field(default=3.0, gt=0)
    db_statement_timeout_ms: int = Field(default=30_000, ge=0)
    db_echo: bool = False
    db_replica_reads: bool = Field(
        default=True, description="false: every read on the primary (the benchmark's baseline)"
    )
    db_replica_check_interval_seconds: float = Field(default=2.0, gt=0)
    db_replica_max_lag_bytes: int = Field(default=8 * 1024 * 1024, ge=0)
    db_replica_max_lag_seconds: float = Field(default=30.0, gt=0)
    db_read_your_writes_seconds: float = Field(
        default=30.0, ge=0, description="how long a process remembers a user's last write"
    )
    db_n_plus_one_threshold: int = Field(
        default=5, ge=2, description="one statement shape run this often per request is an N+1"
    )
    db_n_plus_one_strict: bool = Field(
        default=False, description="raise on an N+1 instead of counting and warning (tests)"
    )
    db_sql_comments: bool = Field(
        default=True, description="append /*module='..',route='..'*/ to every statement"
    )
    db_sample_slow_ms: float = Field(
        default=100.0,
        ge=0,
        description="keep the parameters of statements slower than this; 0: off",
    )
    # The database audit (python -m app db audit): a monitoring role, not the app's user. Empty:
    # the app's own URL. The replicas are reached with these credentials on the hosts and ports
    # of APP_REPLICA_DATABASE_URL.
    audit_database_url: PostgresDsn | None = None

    secret_key: SecretStr = SecretStr(DEV_SECRET_KEY)
    metrics_token: SecretStr = SecretStr(DEV_METRICS_TOKEN)
    jwt_issuer: str = "saas-backend"
    jwt_audience: str = "saas-backend-api"
    # Reads trust an access token until it expires, so this bounds how long a revoked one still
    # reads (admin and money routes check it against the account at once: docs/auth.md).
    access_token_ttl_seconds: int = Field(default=300, ge=60, le=3600)
    jwt_leeway_seconds: int = Field(default=10, ge=0, le=60)

    # auth: argon2id cost (argon2-cffi's RFC 9106 low-memory profile by default); changing them
    # rehashes each password at its next successful login.
    auth_argon2_time_cost: int = Field(default=3, ge=1)
    auth_argon2_memory_kib: int = Field(default=65536, ge=8)
    auth_argon2_parallelism: int = Field(default=4, ge=1)
    auth_password_min_length: int = Field(default=10, ge=8)
    auth_require_verified_email: bool = True
    auth_refresh_token_ttl_days: int = Field(default=30, ge=1)
    auth_verification_ttl_hours: int = Field(default=24, ge=1)
    auth_reset_ttl_minutes: int = Field(default=30, ge=1)
    # Failed logins: a tight limit per (account, client address), so a guesser is stopped
    # without locking the owner out elsewhere; a looser one per account (OWASP ASVS: at most
    # 100 an hour), against guessing from many addresses; one per address, across accounts.
    auth_login_failures_per_account_and_ip: int = Field(default=5, ge=1)
    auth_login_failures_per_ip: int = Field(default=20, ge=1)
    auth_login_window_seconds: int = Field(default=900, ge=1)
    auth_login_failures_per_account: int = Field(default=100, ge=1)
    auth_login_account_window_seconds: int = Field(default=3600, ge=1)
    # Password hashes at once per process (empty: the CPU count) and how many more may wait;
    # past that a login answers 503 with Retry-After at once instead of queueing for minutes.
    auth_hash_concurrency: int | None = Field(default=None, ge=1)
    auth_hash_queue: int = Field(default=32, ge=0)
    # Peers whose X-Forwarded-For is believed (addresses or CIDR ranges, comma-separated);
    # empty: nobody's, the TCP peer is the client.
    trusted_proxies: Annotated[tuple[str, ...], NoDecode] = ()
    auth_reset_requests_per_account: int = Field(default=3, ge=1)
    auth_reset_requests_per_ip: int = Field(default=10, ge=1)
    auth_reset_window_seconds: int = Field(default=3600, ge=1)
    public_base_url: str = Field(
        default="http://127.0.0.1:8000", description="where links in emails point"
    )

    max_body_bytes: int = Field(
        default=1_048_576, ge=1, description="request bodies over this get 413"
    )
    readiness_timeout_seconds: float = Field(default=2.0, gt=0)
    access_log: bool = Field(default=True, description="one structured log line per request")
    gc_freeze: bool = Field(
        default=True, description="gc.freeze() after startup (app/platform/process.py)"
    )
    gc_gen0_threshold: int = Field(
        default=10_000, ge=0, description="the collector's generation-0 threshold; 0: Python's"
    )
    http_metrics: bool = Field(
        default=True,
        description="the http_* families and per-request SQL attribution (off: a baseline)",
    )

    # Events: the outbox dispatcher (app/platform/events).
    events_dispatcher_enabled: bool = Field(
        default=True, description="run a dispatcher inside each app process"
    )
    events_concurrency: int = Field(default=16, ge=1, le=256)
    events_poll_interval_seconds: float = Field(default=1.0, gt=0)
    events_listener_timeout_seconds: float = Field(default=30.0, gt=0)
    events_max_attempts: int = Field(default=10, ge=1)
    events_backoff_base_seconds: float = Field(default=1.0, gt=0)
    events_backoff_max_seconds: float = Field(default=600.0, gt=0)
    events_retention_hours: float = Field(default=168.0, gt=0)
    events_prune_interval_seconds: float = Field(default=600.0, gt=0)

    # Notifications: how email leaves the process.
    email_backend: Literal["console", "smtp", "memory"] = "console"
    email_from: str = "SaaS backend <no-reply@example.com>"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=1025, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_timeout_seconds: float = Field(default=10.0, gt=0)

    payments_provider: Literal["fake"] = Field(
        default="fake",
        description="the payment provider adapter (app/bootstrap.py builds it); the fake one is "
        "for development and tests",
    )
    payments_allow_fake_provider: bool = Field(
        default=False, description="staging only: allow the fake provider for a demo"
    )
    payments_provider_timeout_seconds: float = Field(
        default=10.0, gt=0, description="a charge not answered within this leaves the order pending"
    )
    payments_fake_provider_latency_ms: int = Field(
        default=50, ge=0, description="how long the fake provider takes to answer"
    )
    payments_fake_provider_database_url: PostgresDsn | None = Field(
        default=None, description="where the fake keeps its ledger; default: APP_DATABASE_URL"
    )
    payments_fake_provider_webhook_url: str | None = Field(
        default=None, description="the fake posts signed outcomes here; empty: no webhooks"
    )
    payments_fake_provider_webhook_delay_ms: int = Field(
        default=0, ge=0, description="the fake's webhooks leave this late"
    )
    payments_fake_provider_webhook_reorder: bool = Field(
        default=False, description="the fake sends its due webhooks newest first"
    )
    payments_webhook_secret: SecretStr = SecretStr(DEV_PAYMENTS_WEBHOOK_SECRET)
    payments_webhook_tolerance_seconds: int = Field(default=300, ge=1)
    payments_idempotency_ttl_seconds: int = Field(default=86_400, ge=60)
    payments_catalog_cache: bool = Field(
        default=True, description="product pages cached in each process, invalidated by NOTIFY"
    )
    payments_catalog_cache_max_entries: int = Field(default=10_000, ge=1)
    payments_idempotency_lease_seconds: float = Field(
        default=30.0,
        gt=0,
        description="a checkout key whose request stopped answering is resumed after this",
    )
    payments_reconcile_after_seconds: float = Field(
        default=300.0, gt=0, description="payments and refunds pending longer are reconciled"
    )
    payments_reconcile_interval_seconds: float = Field(default=60.0, gt=0)
    payments_reconcile_batch: int = Field(default=100, ge=1, le=10_000)
    payments_purge_interval_seconds: float = Field(default=600.0, gt=0)
    payments_purge_batch: int = Field(default=1000, ge=1, le=100_000)
    payments_purge_max_batches: int = Field(default=100, ge=1)

    # Analytics ingestion limits: a batch over any of them is refused whole with a 422.
    analytics_max_batch_events: int = Field(default=500, ge=1, le=10_000)
    analytics_max_properties_bytes: int = Field(default=4096, ge=2)
    analytics_max_properties_keys: int = Field(default=50, ge=0)
    analytics_max_properties_depth: int = Field(default=4, ge=1)
    analytics_max_string_length: int = Field(default=512, ge=1)
    # Analytics reports: replica queries under their own timeout and a per-process bulkhead.
    analytics_report_statement_timeout_ms: int = Field(default=5000, ge=1)
    analytics_report_max_concurrency: int = Field(default=2, ge=1)
    analytics_report_max_range_days: int = Field(default=92, ge=1)
    analytics_report_isolation: Literal["bulkhead", "none"] = Field(
        default="bulkhead",
        description=(
            "none: reports on the primary, in the same pool, without bulkhead or statement "
            "timeout (the benchmark's and the workshop's 'before'; development and test only)"
        ),
    )

    # Faults (app/platform/faults.py): how often each process reads the switches.
    faults_refresh_seconds: float = Field(default=1.0, gt=0)
    # How long platform.slow_responses holds each request it hits (over the 500 ms latency SLO).
    faults_slow_response_seconds: float = Field(default=1.0, gt=0)

    # The correctness canary (app/platform/canary/): a journey the worker runs through the public
    # API: an admin changes the canary product's price, each canary user reads it back.
    canary_base_url: str = Field(
        default="", description="the API the canary calls (e.g. http://app:8000); empty: no canary"
    )
    canary_interval_seconds: float = Field(default=30.0, gt=0)
    canary_settle_seconds: float = Field(
        default=1.0, ge=0, description="after a change: the replica and other processes catch up"
    )
    canary_admin_email: str = ""
    # Several readers: a fault that hits a stable slice of users shows only to some of them.
    canary_user_emails: Annotated[tuple[str, ...], NoDecode] = ()
    canary_password: SecretStr | None = None
    canary_product_name: str = Field(default="Canary probe", min_length=1, max_length=200)

    @field_validator("canary_base_url", "canary_admin_email", mode="before")
    @classmethod
    def _none_is_empty(cls, value: object) -> object:
        # A ConfigMap's empty value may arrive as null: it means "not set", like "".
        return "" if value is None else value

    @field_validator("canary_user_emails", "replica_database_urls", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if value is None:
            return ()
        if isinstance(value, str):
            return tuple(v.strip() for v in value.split(",") if v.strip())
        return value

    @model_validator(mode="after")
    def _one_list_of_replicas(self) -> Settings:
        if not self.replica_database_urls:
            return self
        first = self.replica_database_urls[0]
        single = self.replica_database_url
        if "replica_database_url" in self.model_fields_set and single not in (None, first):
            raise ValueError(
                "APP_REPLICA_DATABASE_URL and APP_REPLICA_DATABASE_URLS disagree: set only "
                "APP_REPLICA_DATABASE_URLS (its first URL stands for the single setting)"
            )
        # Readers of the single setting (the audit, the startup line) see the first replica.
        self.replica_database_url = first
        return self

    @property
    def replica_urls(self) -> tuple[str, ...]:
        """Every replica reads may go to, in the order configured; empty: none."""
        if self.replica_database_urls:
            return tuple(str(url) for url in self.replica_database_urls)
        return (str(self.replica_database_url),) if self.replica_database_url else ()

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: object) -> object:
        if value is None:
            return ()
        if isinstance(value, str):
            value = tuple(v.strip() for v in value.split(",") if v.strip())
        if isinstance(value, list | tuple):
            for item in value:
                ipaddress.ip_network(str(item), strict=False)  # ValueError names the bad one
        return value

    @property
    def direct_database_url(self) -> str:
        """The primary's URL without a pooler in between: for sessions that outlive a
        transaction (LISTEN) and for schema work."""
        return str(self.database_direct_url or self.database_url)

    @property
    def is_dev(self) -> bool:
        """Development, test or a workshop's local stack: dev secrets and faults allowed."""
        return self.env in ("development", "test", "workshop")

    @property
    def json_logs(self) -> bool:
        return (self.env != "development") if self.log_json is None else self.log_json

    @model_validator(mode="after")
    def _refuse_unisolated_reports(self) -> Settings:
        if self.analytics_report_isolation == "none" and not self.is_dev:
            raise ValueError(
                f"refusing to start with APP_ENV={self.env} and "
                "APP_ANALYTICS_REPORT_ISOLATION=none: reports would share checkout's database"
            )
        return self

    @model_validator(mode="after")
    def _check_payments_timing(self) -> Settings:
        # A live checkout must finish its charge before another request may resume its key.
        if self.payments_idempotency_lease_seconds <= self.payments_provider_timeout_seconds:
            raise ValueError(
                "APP_PAYMENTS_IDEMPOTENCY_LEASE_SECONDS must be longer than "
                "APP_PAYMENTS_PROVIDER_TIMEOUT_SECONDS"
            )
        if self.payments_reconcile_after_seconds < self.payments_idempotency_lease_seconds:
            raise ValueError(
                "APP_PAYMENTS_RECONCILE_AFTER_SECONDS must be at least "
                "APP_PAYMENTS_IDEMPOTENCY_LEASE_SECONDS"
            )
        return self

    @model_validator(mode="after")
    def _refuse_unsafe_parts(self) -> Settings:
        """Outside development and test: real secrets, real adapters, a public https URL."""
        if self.is_dev:
            return self
        defaults = {
            "APP_SECRET_KEY": DEV_SECRET_KEY,
            "APP_METRICS_TOKEN": DEV_METRICS_TOKEN,
            "APP_PAYMENTS_WEBHOOK_SECRET": DEV_PAYMENTS_WEBHOOK_SECRET,
        }
        problems = [*weak_secrets(self, defaults), *unsafe_adapters(self)]
        if problems:
            raise ValueError(f"refusing to start with APP_ENV={self.env}: " + "; ".join(problems))
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()

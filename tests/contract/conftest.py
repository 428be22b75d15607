"""Contract tests run on a database of their own, so what they generate lands in no other test."""

from __future__ import annotations

import pytest

from app.platform.config import Settings
from app.platform.db.migrations import alembic_config
from tests.helpers import make_settings, replica_catch_up
from tools.pgstack import Stack

CONTRACT_DB = "contract"
WEBHOOK_SECRET = "contract-webhook-secret-0123456789abcdef"


@pytest.fixture(scope="session")
def contract_db(migrated: Stack) -> Stack:
    from alembic import command

    migrated.primary.psql(f"CREATE DATABASE {CONTRACT_DB} OWNER app")
    command.upgrade(alembic_config(migrated.url(migrated.primary_port, db=CONTRACT_DB)), "head")
    replica_catch_up(migrated)
    return migrated


@pytest.fixture(scope="session")
def settings(contract_db: Stack) -> Settings:
    return make_settings(
        contract_db,
        database_url=contract_db.url(contract_db.primary_port, db=CONTRACT_DB),
        replica_database_url=contract_db.url(contract_db.replica_port, db=CONTRACT_DB),
        payments_fake_provider_latency_ms=0,
        payments_webhook_secret=WEBHOOK_SECRET,
        # The dispatcher would deliver the run's events to listeners: not what is under test.
        events_dispatcher_enabled=False,
    )

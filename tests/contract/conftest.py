"""Contract tests run on a database of their own, so what they generate lands in no other test."""

from __future__ import annotations

import uuid

import pytest

from app.platform.config import Settings
from app.platform.db.migrations import alembic_config
from app.platform.security import create_access_token
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


def make_account(stack: Stack, role: str) -> uuid.UUID:
    """A verified account of ``role`` in the contract database (tokens name real accounts)."""
    user_id = uuid.uuid4()
    values = f"('{user_id}', 'contract-{user_id.hex[:12]}@example.com', 'x', '{role}', now())"
    columns = "id, email, password_hash, role, email_verified_at"
    stack.primary.psql(f"INSERT INTO auth_user ({columns}) VALUES {values}", db=CONTRACT_DB)  # noqa: S608 - a uuid and a role literal
    return user_id


def bearer(settings: Settings, stack: Stack, role: str) -> dict[str, str]:
    roles = ["member", "admin"] if role == "admin" else ["member"]
    token = create_access_token(settings, make_account(stack, role), roles)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def admin(settings: Settings, contract_db: Stack) -> dict[str, str]:
    return bearer(settings, contract_db, "admin")


@pytest.fixture
def member(settings: Settings, contract_db: Stack) -> dict[str, str]:
    return bearer(settings, contract_db, "member")

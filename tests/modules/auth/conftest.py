"""Fixtures for auth: accounts created through the service, as signup would."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from fastapi import FastAPI

from app.modules.auth.models import User
from app.modules.auth.passwords import Passwords
from tests.helpers import replica_caught_up

PASSWORD = "Correct-Horse-42"


@dataclass
class Account:
    id: uuid.UUID
    email: str
    password: str = PASSWORD


@pytest.fixture
def make_account(app: FastAPI):  # type: ignore[no-untyped-def]
    """Insert a user directly (verified unless told otherwise), with a real argon2 hash."""

    async def make(
        *, verified: bool = True, role: str = "member", password: str = PASSWORD
    ) -> Account:
        email = f"user-{uuid.uuid4().hex[:12]}@example.com"
        passwords = Passwords(app.state.settings)
        async with app.state.db.session() as session:
            user = User(
                id=uuid.uuid4(),
                email=email,
                password_hash=await passwords.hash(password),
                role=role,
                email_verified_at=datetime.now(UTC) if verified else None,
            )
            session.add(user)
            await session.commit()
        await replica_caught_up(app.state.db)
        return Account(user.id, email, password)

    return make

"""auth's use cases against an in-memory repository, a plain hasher and a fixed clock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest

from app.modules.auth.interface import EmailVerified, PasswordResetRequested, UserSignedUp
from app.modules.auth.models import PURPOSE_VERIFY_EMAIL
from app.modules.auth.service import (
    AuthPorts,
    AuthService,
    EmailNotVerified,
    InvalidToken,
    PasswordResetLinks,
    UsersReader,
)
from app.modules.auth.service._common import hash_token
from app.platform.config import Settings
from app.platform.errors import Conflict, Unauthorized, ValidationFailed
from app.platform.pagination import InvalidCursor
from tests.unit.auth.fakes import CountingLimiter, MemoryAuthRepository, PlainPasswords
from tests.unit.fakes import Clock, FakeSession, FakeSessions, Ids, RecordingOutbox, unit_settings

PASSWORD = "correct-Horse-7"


@dataclass
class Auth:
    service: AuthService
    repo: MemoryAuthRepository
    outbox: RecordingOutbox
    clock: Clock
    limiter: CountingLimiter
    passwords: PlainPasswords
    settings: Settings


@pytest.fixture
def auth() -> Auth:
    settings = unit_settings(public_base_url="https://app.example")
    clock, session = Clock(), FakeSession()
    repo, outbox = MemoryAuthRepository(clock), RecordingOutbox()
    limiter, passwords = CountingLimiter(), PlainPasswords(settings)
    service = AuthService(
        session.as_session(),
        settings,
        passwords,
        limiter,
        sessions=FakeSessions(session).as_factory(),
        ports=AuthPorts(clock=clock, ids=Ids()),
        repo=repo,
        outbox=outbox,
    )
    return Auth(service, repo, outbox, clock, limiter, passwords, settings)


def _token_of(url: str) -> str:
    return url.split("token=", 1)[1]


async def _verified_account(auth: Auth, email: str = "ada@example.com") -> str:
    await auth.service.signup(email, PASSWORD)
    [signed_up] = [e for e in auth.outbox.of(UserSignedUp) if e.email == email]
    await auth.service.verify_email(_token_of(signed_up.verification_url))
    return email


async def test_signup_publishes_a_verification_link_that_expires_in_a_day(auth: Auth) -> None:
    await auth.service.signup("  Ada@Example.com ", PASSWORD)
    [user] = auth.repo.users.values()
    assert user.email == "ada@example.com"
    assert user.password_hash == f"plain${PASSWORD}"
    [event] = auth.outbox.of(UserSignedUp)
    assert event.user_id == user.id
    assert event.verification_url.startswith("https://app.example/verify-email?token=")
    assert event.expires_at == auth.clock() + timedelta(hours=24)
    [token] = auth.repo.one_time
    assert token.token_hash == hash_token(_token_of(event.verification_url))
    assert token.purpose == PURPOSE_VERIFY_EMAIL


async def test_a_second_signup_for_the_address_costs_a_hash_and_changes_nothing(
    auth: Auth,
) -> None:
    await auth.service.signup("ada@example.com", PASSWORD)
    await auth.service.signup("ada@example.com", "another-Pass-9")
    assert len(auth.repo.users) == 1
    assert len(auth.outbox.of(UserSignedUp)) == 1
    assert auth.passwords.hashed == 2  # the same work whether or not the address is known


async def test_a_weak_password_is_refused_before_anything_is_hashed(auth: Auth) -> None:
    with pytest.raises(ValidationFailed) as refused:
        await auth.service.signup("ada@example.com", "aaaaaaaaaa")
    assert refused.value.extensions["errors"][0]["field"] == "password"
    assert auth.passwords.hashed == 0
    assert auth.repo.users == {}


async def test_a_verification_link_works_once_and_not_after_it_expires(auth: Auth) -> None:
    await auth.service.signup("ada@example.com", PASSWORD)
    await auth.service.signup("bob@example.com", PASSWORD)
    first, second = auth.outbox.of(UserSignedUp)
    await auth.service.verify_email(_token_of(first.verification_url))
    assert [e.user_id for e in auth.outbox.of(EmailVerified)] == [first.user_id]
    assert auth.repo.users[first.user_id].email_verified_at == auth.clock()
    with pytest.raises(InvalidToken):
        await auth.service.verify_email(_token_of(first.verification_url))
    auth.clock.advance(hours=24)
    with pytest.raises(InvalidToken):
        await auth.service.verify_email(_token_of(second.verification_url))


async def test_login_counts_only_failures_and_refuses_an_unverified_address(auth: Auth) -> None:
    await auth.service.signup("eve@example.com", PASSWORD)
    with pytest.raises(EmailNotVerified):
        await auth.service.login("eve@example.com", PASSWORD, "10.0.0.1")
    email = await _verified_account(auth)
    with pytest.raises(Unauthorized):
        await auth.service.login(email, "wrong-Pass-1", "10.0.0.1")
    assert auth.limiter.counts[f"login-account:{email}"] == 1
    pair = await auth.service.login(email, PASSWORD, "10.0.0.1")
    assert auth.limiter.counts[f"login-account:{email}"] == 1  # the success is given back
    assert f"login-account-ip:{email}|10.0.0.1" not in auth.limiter.counts  # and cleared
    [issued] = [
        t for t in auth.repo.refresh_tokens if t.token_hash == hash_token(pair.refresh_token)
    ]
    assert issued.expires_at == auth.clock() + timedelta(
        days=auth.settings.auth_refresh_token_ttl_days
    )


async def test_a_reused_refresh_token_revokes_its_family_and_still_commits(auth: Auth) -> None:
    email = await _verified_account(auth)
    first = await auth.service.login(email, PASSWORD, "10.0.0.1")
    second = await auth.service.refresh(first.refresh_token)
    with pytest.raises(Unauthorized) as reused:
        await auth.service.refresh(first.refresh_token)
    assert reused.value.commit is True
    assert reused.value.extensions["reason"] == "reused"
    assert all(t.revoked_at is not None for t in auth.repo.refresh_tokens)
    with pytest.raises(Unauthorized):
        await auth.service.refresh(second.refresh_token)


async def test_an_expired_refresh_token_is_refused(auth: Auth) -> None:
    email = await _verified_account(auth)
    pair = await auth.service.login(email, PASSWORD, "10.0.0.1")
    auth.clock.advance(days=auth.settings.auth_refresh_token_ttl_days)
    with pytest.raises(Unauthorized) as expired:
        await auth.service.refresh(pair.refresh_token)
    assert expired.value.extensions["reason"] == "expired"


async def test_a_role_change_bumps_the_epoch_but_not_on_oneself(auth: Auth) -> None:
    await _verified_account(auth)
    [user] = auth.repo.users.values()
    with pytest.raises(Conflict):
        await auth.service.change_role(user.id, user.id, "admin")
    admin = await auth.service.change_role(auth.service.ports.ids(), user.id, "admin")
    assert admin.role == "admin"
    assert auth.repo.epochs[user.id] == 1
    await auth.service.change_role(auth.service.ports.ids(), user.id, "admin")
    assert auth.repo.epochs[user.id] == 1  # no change, no revocation


async def test_a_reset_link_is_minted_only_for_a_known_address(auth: Auth) -> None:
    email = await _verified_account(auth)
    session = FakeSession()
    links = PasswordResetLinks(
        session.as_session(),
        auth.settings,
        ports=AuthPorts(clock=auth.clock),
        repo=auth.repo,
        outbox=auth.outbox,
    )
    await links.issue("nobody@example.com")
    assert auth.outbox.of(PasswordResetRequested) == []
    await links.issue(email)
    [event] = auth.outbox.of(PasswordResetRequested)
    assert event.expires_at == auth.clock() + timedelta(
        minutes=auth.settings.auth_reset_ttl_minutes
    )
    assert session.flushes == 1


async def test_the_users_page_walks_every_account_once_with_its_cursor(auth: Auth) -> None:
    for n in range(5):
        await auth.service.signup(f"user{n}@example.com", PASSWORD)
        auth.clock.advance(seconds=1)
    reader = UsersReader(FakeSession().as_session(), repo=auth.repo)
    seen, cursor, pages = [], None, 0
    while True:
        page, cursor = await reader.list_users(limit=2, cursor=cursor)
        seen += [u.email for u in page]
        pages += 1
        if cursor is None:
            break
    assert seen == [f"user{n}@example.com" for n in range(5)]
    assert pages == 3
    with pytest.raises(InvalidCursor):
        await reader.list_users(limit=2, cursor="not-a-cursor")

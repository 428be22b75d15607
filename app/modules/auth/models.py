"""auth's tables: users, refresh-token families, single-use tokens, token epochs."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Uuid, func
from sqlalchemy.orm import Mapped, mapped_column

from app.platform.db.base import Base, TimestampMixin

ROLES = ("member", "admin")
PURPOSE_VERIFY_EMAIL = "verify_email"
PURPOSE_PASSWORD_RESET = "password_reset"  # noqa: S105 - a label, not a secret


class User(TimestampMixin, Base):
    __tablename__ = "auth_user"
    __table_args__ = (CheckConstraint("role IN ('member', 'admin')", name="role"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    # Stored normalised (trimmed, lower-cased) so uniqueness is case-insensitive.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="member", server_default="member")
    email_verified_at: Mapped[datetime | None]
    password_changed_at: Mapped[datetime] = mapped_column(server_default=func.now())


class RefreshToken(Base):
    """One link of a rotation chain; the chain is the family. Only the hash is stored."""

    __tablename__ = "auth_refresh_token"
    __table_args__ = (
        Index("ix_auth_refresh_token_family_id", "family_id"),
        Index("ix_auth_refresh_token_user_id", "user_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("auth_user.id", ondelete="CASCADE"))
    family_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    expires_at: Mapped[datetime]
    rotated_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class OneTimeToken(Base):
    """Email verification and password reset tokens: single use, expiring, stored hashed."""

    __tablename__ = "auth_one_time_token"
    __table_args__ = (
        CheckConstraint("purpose IN ('verify_email', 'password_reset')", name="purpose"),
        Index("ix_auth_one_time_token_user_id_purpose", "user_id", "purpose"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("auth_user.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(String(32))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class TokenEpoch(Base):
    """Each account's token epoch: access tokens stamped with an older one are revoked.

    No foreign key on purpose: the row outlives a deleted account, so that account's tokens stay
    dead. No row means epoch 0.
    """

    __tablename__ = "auth_token_epoch"

    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer, default=0)
    changed_at: Mapped[datetime] = mapped_column(server_default=func.now())

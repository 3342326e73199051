"""Who can act: users (customer, partner, staff), API tokens, portal sessions and failed logins."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, Enum, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from api.models.base import Base, HasId, utcnow

__all__ = ["ApiToken", "LoginAlert", "LoginFailure", "StaffRole", "TokenAccess", "TokenScope", "User", "UserKind", "UserSession"]


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    return Enum(cls, native_enum=False, length=24, create_constraint=True, name=name,
                values_callable=lambda members: [m.value for m in members])


class UserKind(enum.StrEnum):
    CUSTOMER = "customer"
    PARTNER = "partner"
    STAFF = "staff"


class StaffRole(enum.StrEnum):
    SUPPORT_ENGINEER = "support_engineer"
    CLIENT_MANAGER = "client_manager"
    ADMIN = "admin"


class TokenScope(enum.StrEnum):
    CUSTOMER = "customer"
    PARTNER = "partner"
    PROVIDER = "provider"


class TokenAccess(enum.StrEnum):
    READ = "read"
    READ_WRITE = "read_write"


class User(HasId, Base):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(
            "(kind = 'customer' AND customer_id IS NOT NULL AND partner_id IS NULL AND staff_role IS NULL)"
            " OR (kind = 'partner' AND partner_id IS NOT NULL AND customer_id IS NULL AND staff_role IS NULL)"
            " OR (kind = 'staff' AND staff_role IS NOT NULL AND customer_id IS NULL AND partner_id IS NULL)",
            name="belongs_to_one",
        ),
    )

    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(200))
    kind: Mapped[UserKind] = mapped_column(_enum(UserKind, "user_kind"))
    staff_role: Mapped[StaffRole | None] = mapped_column(_enum(StaffRole, "staff_role"))
    customer_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("customers.id"), index=True)
    partner_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("partners.id"), index=True)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]


class ApiToken(HasId, Base):
    """An integrator's token. Only a hash of the secret is kept; the secret is shown once."""

    __tablename__ = "api_tokens"
    __table_args__ = (
        CheckConstraint(
            "(scope = 'customer' AND customer_id IS NOT NULL AND partner_id IS NULL)"
            " OR (scope = 'partner' AND partner_id IS NOT NULL AND customer_id IS NULL)"
            " OR (scope = 'provider' AND customer_id IS NULL AND partner_id IS NULL)",
            name="scope_target",
        ),
    )

    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    scope: Mapped[TokenScope] = mapped_column(_enum(TokenScope, "token_scope"))
    access: Mapped[TokenAccess] = mapped_column(_enum(TokenAccess, "token_access"))
    customer_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("customers.id"))
    partner_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("partners.id"))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class UserSession(Base):
    """A portal session; the cookie holds a random secret, the table only its hash."""

    __tablename__ = "user_sessions"

    secret_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class LoginFailure(HasId, Base):
    """A login attempt that did not succeed, by account (the e-mail as typed, normalised: unknown accounts are
    throttled alike) and source (api/domain/login_throttle.source_key). Written before the password is
    checked and deleted, with the rest of its (account, source) pair's, when it succeeds. Rows older than
    the throttling window are pruned as new ones are written."""

    __tablename__ = "login_failures"
    __table_args__ = (
        Index("ix_login_failures_email_failed", "email", "failed_at"),
        Index("ix_login_failures_source_failed", "source_address", "failed_at"),
        Index("ix_login_failures_failed", "failed_at"),
    )

    email: Mapped[str] = mapped_column(String(254))
    source_address: Mapped[str] = mapped_column(String(64))
    failed_at: Mapped[datetime] = mapped_column(default=utcnow)


class LoginAlert(Base):
    """When a user was last e-mailed about failed logins to their account: at most once per throttling window."""

    __tablename__ = "login_alerts"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), primary_key=True)
    alerted_at: Mapped[datetime]

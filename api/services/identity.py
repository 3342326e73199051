"""Identities: users and passwords, portal sessions, login throttling, API tokens, and the Actor each
credential stands for."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update

from api.domain.login_throttle import source_key
from api.models import ApiToken, Customer, Partner, StaffRole, TokenAccess, TokenScope, User, UserKind
from api.models.identity import UserSession
from api.services import audit, inputs, login_throttle, policy
from api.services.context import Actor, AppContext
from api.services.paging import Page, by_key, cut_page, encode_key_cursor
from api.services.errors import (
    AuthenticationFailed,
    Conflict,
    NotFound,
    ValidationFailed,
    check_email,
)

__all__ = [
    "NewToken",
    "NewUser",
    "SESSION_LIFETIME",
    "Login",
    "actor_for_token",
    "actor_for_user",
    "create_token",
    "create_user",
    "list_tokens",
    "log_in",
    "log_out",
    "page_users",
    "revoke_token",
    "session_actor",
    "token_actor",
    "user_cursor",
]

SESSION_LIFETIME = timedelta(hours=12)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MIN_PASSWORD_LENGTH = 12
TOKEN_PREFIX = "ent"
# What token_hex and token_urlsafe write (with room to spare): anything else is no token of ours, and is
# refused before it reaches a query.
_TOKEN_PART = re.compile(r"[A-Za-z0-9_-]{1,128}")

_hasher = PasswordHasher()
# Verifying against a throw-away hash when the account does not exist keeps both answers equally slow.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class NewUser:
    email: str
    name: str
    password: str
    kind: UserKind
    staff_role: StaffRole | None = None
    customer_id: uuid.UUID | None = None
    partner_id: uuid.UUID | None = None


@dataclass(frozen=True)
class NewToken:
    name: str
    scope: TokenScope
    access: TokenAccess
    customer_id: uuid.UUID | None = None
    partner_id: uuid.UUID | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True)
class Login:
    user: User
    session_secret: str  # goes in the cookie; only its hash is stored
    csrf_token: str
    expires_at: datetime


def actor_for_user(user: User, interface: str = "portal") -> Actor:
    common = {"ref": f"user:{user.id}", "name": f"{user.name} <{user.email}>", "user_id": user.id, "interface": interface}
    if user.kind == UserKind.CUSTOMER:
        return Actor(kind="customer", customer_id=user.customer_id, **common)
    if user.kind == UserKind.PARTNER:
        return Actor(kind="partner", partner_id=user.partner_id, **common)
    return Actor(kind="staff", roles=frozenset({str(user.staff_role)}), **common)


def actor_for_token(token: ApiToken, interface: str = "graphql") -> Actor:
    common = {
        "ref": f"token:{token.id}",
        "name": f"API token {token.name!r}",
        "token_id": token.id,
        "read_only": token.access == TokenAccess.READ,
        "interface": interface,
    }
    if token.scope == TokenScope.CUSTOMER:
        return Actor(kind="customer", customer_id=token.customer_id, **common)
    if token.scope == TokenScope.PARTNER:
        return Actor(kind="partner", partner_id=token.partner_id, **common)
    return Actor(kind="staff", roles=frozenset({"integrator"}), **common)


def _normal_email(email: str) -> str:
    return email.strip().lower()


async def create_user(ctx: AppContext, actor: Actor, new: NewUser) -> User:
    policy.require(actor, "user.manage")
    email = _normal_email(new.email)
    check_email(email, field="email")
    if not new.name.strip() or len(new.name) > 200:
        raise ValidationFailed("name must be 1 to 200 characters", field="name")
    inputs.text(ctx, new.name.strip(), "name")
    if len(new.password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(f"password must be at least {MIN_PASSWORD_LENGTH} characters", field="password")
    inputs.text(ctx, new.password, "password")
    expected = {
        UserKind.CUSTOMER: ("customerId", new.customer_id is not None and new.partner_id is None and new.staff_role is None),
        UserKind.PARTNER: ("partnerId", new.partner_id is not None and new.customer_id is None and new.staff_role is None),
        UserKind.STAFF: ("staffRole", new.staff_role is not None and new.customer_id is None and new.partner_id is None),
    }
    field, consistent = expected[new.kind]
    if not consistent:
        raise ValidationFailed(
            f"a {new.kind.value} user needs {field} and nothing else of customerId, partnerId, staffRole", field=field
        )
    async with ctx.db.write() as session:
        if new.customer_id is not None and await session.get(Customer, new.customer_id) is None:
            raise NotFound("customer", new.customer_id, field="customerId")
        if new.partner_id is not None and await session.get(Partner, new.partner_id) is None:
            raise NotFound("partner", new.partner_id, field="partnerId")
        if await session.scalar(select(User.id).where(User.email == email)):
            raise Conflict(f"a user with e-mail {email} already exists", field="email")
        user = User(
            email=email,
            name=new.name.strip(),
            password_hash=_hasher.hash(new.password),
            kind=new.kind,
            staff_role=new.staff_role,
            customer_id=new.customer_id,
            partner_id=new.partner_id,
            created_at=ctx.now(),
        )
        session.add(user)
        await session.flush()
        await audit.record(
            session, ctx, actor, "user.create", target_type="user", target_id=user.id,
            on_behalf_of_customer_id=new.customer_id, detail={"email": email, "kind": new.kind.value},
        )
        return user


def user_cursor(user: User) -> str:
    return encode_key_cursor(user.email)


async def page_users(ctx: AppContext, actor: Actor, *, first: int = 50, after: str | None = None) -> Page[User]:
    """Every user, by e-mail address, paged by keyset on it (addresses are unique)."""
    policy.require(actor, "user.read")
    async with ctx.db.read() as session:
        found = list(await session.scalars(by_key(select(User), User.email, first=first, after=after)))
    return Page(*cut_page(found, first, user_cursor))


async def log_in(
    ctx: AppContext,
    email: str,
    password: str,
    *,
    source_address: str | None = None,
    previous_session: str | None = None,
) -> Login:
    """Check a password and open a new session. The session presented before logging in, if any, is
    ended: a login always issues a new session id.

    `source_address` is the client address the attempt comes from (None: unknown). Attempts are throttled,
    never locked (api/domain/login_throttle.py): a source that keeps failing for an account, or for many
    accounts, is refused with TooManyAttempts for a growing while, whatever the password, while the same
    account from another source is let through. A success forgets its (account, source) pair's failures.
    Past ENTITLE_LOGIN_ALERT_ATTEMPTS failures the account's owner is e-mailed, once per window."""
    email = _normal_email(email)
    source = source_key(source_address)
    # What no account can have (too long, control characters; PostgreSQL refuses NUL in a query) is counted
    # under a digest, and looked up nowhere.
    storable = len(email) <= 254 and not _CONTROL.search(email)
    email = email if storable else f"invalid:{_digest(email)}"
    attempt = await login_throttle.record_attempt(ctx, email, source)
    user = None
    if storable:
        async with ctx.db.read() as session:
            user = await session.scalar(select(User).where(User.email == email))
    if not _password_matches(user, password):
        if user is not None:
            await login_throttle.tell_owner(ctx, user, attempt)
        raise AuthenticationFailed("wrong e-mail address or password")

    now = ctx.now()
    secret, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    actor = actor_for_user(user, "portal")
    async with ctx.db.write() as session:
        await login_throttle.clear_pair(session, email, source)
        if previous_session:
            await _end_session(session, previous_session, now)
        row = await session.get(User, user.id)
        row.last_login_at = now
        if _hasher.check_needs_rehash(row.password_hash):
            row.password_hash = _hasher.hash(password)
        session.add(UserSession(
            secret_hash=_digest(secret), user_id=user.id, csrf_token=csrf, created_at=now, expires_at=now + SESSION_LIFETIME
        ))
        await audit.record(
            session, ctx, actor, "session.login", target_type="user", target_id=user.id,
            on_behalf_of_customer_id=user.customer_id,
        )
    return Login(user, secret, csrf, now + SESSION_LIFETIME)


def _password_matches(user: User | None, password: str) -> bool:
    usable = user is not None and user.active
    try:
        matched = _hasher.verify(user.password_hash if usable else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return False
    return matched and usable


async def _end_session(session, secret: str, now: datetime) -> None:  # type: ignore[no-untyped-def]
    await session.execute(
        update(UserSession)
        .where(UserSession.secret_hash == _digest(secret), UserSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )


async def log_out(ctx: AppContext, secret: str) -> None:
    async with ctx.db.write() as session:
        await _end_session(session, secret, ctx.now())


async def session_actor(ctx: AppContext, secret: str) -> tuple[Actor, str]:
    """The actor and CSRF token of a live session; AuthenticationFailed for anything else."""
    async with ctx.db.read() as session:
        row = (
            await session.execute(
                select(UserSession, User)
                .join(User, User.id == UserSession.user_id)
                .where(UserSession.secret_hash == _digest(secret))
            )
        ).first()
    if row is None:
        raise AuthenticationFailed("your session is not valid; please log in")
    user_session, user = row
    if user_session.revoked_at is not None or not user.active:
        raise AuthenticationFailed("your session has ended; please log in again")
    if user_session.expires_at <= ctx.now():
        raise AuthenticationFailed("your session has expired; please log in again")
    return actor_for_user(user, "portal"), user_session.csrf_token


async def create_token(ctx: AppContext, actor: Actor, new: NewToken) -> tuple[ApiToken, str]:
    """A new API token and its secret, which is shown this once and never stored."""
    policy.require(actor, "token.manage")
    if not new.name.strip() or len(new.name) > 200:
        raise ValidationFailed("name must be 1 to 200 characters", field="name")
    inputs.text(ctx, new.name.strip(), "name")
    inputs.optional_instant(ctx, new.expires_at, "expiresAt")
    targets = {
        TokenScope.CUSTOMER: ("customerId", new.customer_id is not None and new.partner_id is None),
        TokenScope.PARTNER: ("partnerId", new.partner_id is not None and new.customer_id is None),
        TokenScope.PROVIDER: ("scope", new.customer_id is None and new.partner_id is None),
    }
    field, consistent = targets[new.scope]
    if not consistent:
        raise ValidationFailed(
            f"a {new.scope.value} token takes {'no customer or partner' if field == 'scope' else field + ' only'}",
            field=field,
        )
    if new.expires_at is not None and new.expires_at <= ctx.now():
        raise ValidationFailed("the expiry must be in the future", field="expiresAt")
    prefix, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    async with ctx.db.write() as session:
        if new.customer_id is not None and await session.get(Customer, new.customer_id) is None:
            raise NotFound("customer", new.customer_id, field="customerId")
        if new.partner_id is not None and await session.get(Partner, new.partner_id) is None:
            raise NotFound("partner", new.partner_id, field="partnerId")
        token = ApiToken(
            name=new.name.strip(),
            prefix=prefix,
            secret_hash=_digest(secret),
            scope=new.scope,
            access=new.access,
            customer_id=new.customer_id,
            partner_id=new.partner_id,
            created_by=actor.ref,
            created_at=ctx.now(),
            expires_at=new.expires_at,
        )
        session.add(token)
        await session.flush()
        await audit.record(
            session, ctx, actor, "token.create", target_type="api_token", target_id=token.id,
            on_behalf_of_customer_id=new.customer_id,
            detail={"name": token.name, "scope": new.scope.value, "access": new.access.value},
        )
    return token, f"{TOKEN_PREFIX}_{prefix}_{secret}"


async def revoke_token(ctx: AppContext, actor: Actor, token_id: uuid.UUID) -> ApiToken:
    policy.require(actor, "token.manage")
    async with ctx.db.write() as session:
        token = await session.get(ApiToken, token_id)
        if token is None:
            raise NotFound("API token", token_id, field="id")
        if token.revoked_at is None:
            token.revoked_at = ctx.now()
            await audit.record(session, ctx, actor, "token.revoke", target_type="api_token", target_id=token.id)
        return token


async def list_tokens(ctx: AppContext, actor: Actor) -> list[ApiToken]:
    policy.require(actor, "token.manage")
    async with ctx.db.read() as session:
        return list(await session.scalars(select(ApiToken).order_by(ApiToken.created_at.desc())))


async def token_actor(ctx: AppContext, presented: str, interface: str = "graphql") -> Actor:
    """The actor an `Authorization: Bearer` token stands for; AuthenticationFailed, with the reason,
    for a malformed, unknown, expired or revoked one."""
    parts = presented.split("_", 2)
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
        raise AuthenticationFailed("the bearer token is malformed: expected ent_<prefix>_<secret>")
    _, prefix, secret = parts
    if not _TOKEN_PART.fullmatch(prefix) or not _TOKEN_PART.fullmatch(secret):
        raise AuthenticationFailed("the bearer token is malformed: expected ent_<prefix>_<secret>")
    async with ctx.db.read() as session:
        token = await session.scalar(select(ApiToken).where(ApiToken.prefix == prefix))
    if token is None or not hmac.compare_digest(token.secret_hash, _digest(secret)):
        raise AuthenticationFailed("the bearer token is not valid")
    now = ctx.now()
    if token.revoked_at is not None:
        raise AuthenticationFailed(f"the bearer token was revoked at {token.revoked_at.isoformat()}")
    if token.expires_at is not None and token.expires_at <= now:
        raise AuthenticationFailed(f"the bearer token expired at {token.expires_at.isoformat()}")
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=5):
        # Refreshed at most every few minutes, so reads do not each turn into a write.
        async with ctx.db.write() as session:
            await session.execute(update(ApiToken).where(ApiToken.id == token.id).values(last_used_at=now))
    return actor_for_token(token, interface)


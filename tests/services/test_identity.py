"""Identities at service level: users and their argon2 passwords, login, sessions that
rotate and expire, and API tokens (created once, stored hashed, refused when malformed, unknown,
expired or revoked). Every refusal writes nothing."""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from api.models import ApiToken, AuditEntry, StaffRole, TokenAccess, TokenScope, User, UserKind
from api.models.identity import UserSession
from api.services import identity, parties
from api.services.context import Actor, AppContext
from api.services.errors import (
    AuthenticationFailed,
    Conflict,
    ErrorCode,
    NotFound,
    PermissionDenied,
    ValidationFailed,
)
from tests.conftest import ADMIN, NOW, unique

PASSWORD = "a long enough password"
WRONG = "wrong e-mail address or password"


def email() -> str:
    return f"{unique('user')}@identity.example"


def new_user(**fields: object) -> identity.NewUser:
    values: dict[str, object] = {
        "email": email(),
        "name": "Ida Identity",
        "password": PASSWORD,
        "kind": UserKind.STAFF,
        "staff_role": StaffRole.SUPPORT_ENGINEER,
    }
    values.update(fields)
    return identity.NewUser(**values)  # type: ignore[arg-type]


async def stored(ctx: AppContext, model, ident):  # type: ignore[no-untyped-def]
    async with ctx.db.read() as session:
        return await session.get(model, ident)


async def counts(ctx: AppContext) -> dict[str, int]:
    async with ctx.db.read() as session:
        return {
            m.__tablename__: await session.scalar(select(func.count()).select_from(m))
            for m in (User, ApiToken, AuditEntry, UserSession)
        }


@pytest.fixture
async def customer(make_customer):  # type: ignore[no-untyped-def]
    return await make_customer()


@pytest.fixture
async def partner(ctx):  # type: ignore[no-untyped-def]
    code = unique("partner")
    return await parties.create_partner(ctx, ADMIN, parties.NewPartner(code=code, name=code))


# ---- users and passwords -----------------------------------------------------------------------


async def test_a_password_is_stored_only_as_an_argon2_hash(ctx):
    user = await identity.create_user(ctx, ADMIN, new_user(email=f"  {unique('Mixed.Case')}@Identity.Example "))
    row = await stored(ctx, User, user.id)
    assert row.password_hash.startswith("$argon2id$")
    assert PASSWORD not in row.password_hash
    assert row.email == row.email.strip().lower()  # stored normalised
    assert (row.kind, row.staff_role, row.active, row.created_at) == (UserKind.STAFF, StaffRole.SUPPORT_ENGINEER, True, NOW)
    login = await identity.log_in(ctx, row.email.upper(), PASSWORD)
    assert login.user.id == user.id


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"password": "elevenchars"}, "password", "password must be at least 12 characters"),
        ({"password": ""}, "password", "password must be at least 12 characters"),
        ({"email": "not-an-address"}, "email", "'not-an-address' is not an e-mail address"),
        ({"name": "   "}, "name", "name must be 1 to 200 characters"),
        ({"name": "n" * 201}, "name", "name must be 1 to 200 characters"),
    ],
)
async def test_user_input_refusals_write_nothing(ctx, fields, field, message):
    before = await counts(ctx)
    with pytest.raises(ValidationFailed) as refused:
        await identity.create_user(ctx, ADMIN, new_user(**fields))
    assert (refused.value.field, refused.value.message) == (field, message)
    assert await counts(ctx) == before


async def test_twelve_characters_are_enough(ctx):
    user = await identity.create_user(ctx, ADMIN, new_user(password="twelve chars"))
    assert (await identity.log_in(ctx, user.email, "twelve chars")).user.id == user.id


async def test_a_duplicate_email_is_a_conflict_whatever_its_case(ctx):
    address = email()
    await identity.create_user(ctx, ADMIN, new_user(email=address))
    before = await counts(ctx)
    for again in (address, address.upper(), f"  {address.title()} "):
        with pytest.raises(Conflict) as refused:
            await identity.create_user(ctx, ADMIN, new_user(email=again, kind=UserKind.STAFF))
        assert refused.value.code == ErrorCode.ALREADY_EXISTS
        assert (refused.value.field, refused.value.message) == ("email", f"a user with e-mail {address} already exists")
    assert await counts(ctx) == before


async def test_kind_role_and_target_must_agree(ctx, customer, partner):
    cases = [
        ({"kind": UserKind.STAFF, "staff_role": None}, "staffRole", "a staff user needs staffRole"),
        ({"kind": UserKind.STAFF, "customer_id": customer.id}, "staffRole", "a staff user needs staffRole"),
        ({"kind": UserKind.STAFF, "partner_id": partner.id}, "staffRole", "a staff user needs staffRole"),
        ({"kind": UserKind.CUSTOMER, "staff_role": None}, "customerId", "a customer user needs customerId"),
        ({"kind": UserKind.CUSTOMER, "customer_id": customer.id}, "customerId", "a customer user needs customerId"),
        (
            {"kind": UserKind.CUSTOMER, "staff_role": None, "customer_id": customer.id, "partner_id": partner.id},
            "customerId", "a customer user needs customerId",
        ),
        ({"kind": UserKind.PARTNER, "staff_role": None}, "partnerId", "a partner user needs partnerId"),
        (
            {"kind": UserKind.PARTNER, "staff_role": StaffRole.ADMIN, "partner_id": partner.id},
            "partnerId", "a partner user needs partnerId",
        ),
    ]
    before = await counts(ctx)
    for fields, field, message in cases:
        with pytest.raises(ValidationFailed) as refused:
            await identity.create_user(ctx, ADMIN, new_user(**fields))
        assert refused.value.field == field, fields
        assert refused.value.message == f"{message} and nothing else of customerId, partnerId, staffRole"
    for fields, what, field in (
        ({"kind": UserKind.CUSTOMER, "staff_role": None, "customer_id": uuid.uuid4()}, "customer", "customerId"),
        ({"kind": UserKind.PARTNER, "staff_role": None, "partner_id": uuid.uuid4()}, "partner", "partnerId"),
    ):
        with pytest.raises(NotFound) as missing:
            await identity.create_user(ctx, ADMIN, new_user(**fields))
        assert missing.value.field == field and missing.value.message.startswith(f"{what} ")
    assert await counts(ctx) == before

    made = [
        await identity.create_user(ctx, ADMIN, new_user(kind=UserKind.CUSTOMER, staff_role=None, customer_id=customer.id)),
        await identity.create_user(ctx, ADMIN, new_user(kind=UserKind.PARTNER, staff_role=None, partner_id=partner.id)),
    ]
    assert [(u.kind, u.customer_id, u.partner_id) for u in made] == [
        (UserKind.CUSTOMER, customer.id, None), (UserKind.PARTNER, None, partner.id)
    ]


@pytest.mark.parametrize(
    "actor",
    [
        Actor(kind="staff", ref="user:cm", name="Carl Manager", roles=frozenset({"client_manager"})),
        Actor(kind="staff", ref="token:rw", name="integrator", roles=frozenset({"integrator"})),
        Actor(kind="staff", ref="user:ro", name="read-only admin", roles=frozenset({"admin"}), read_only=True),
        Actor(kind="customer", ref="user:c", name="a customer", customer_id=uuid.uuid4()),
    ],
    ids=["client_manager", "integrator", "read_only", "customer"],
)
async def test_only_admins_manage_users_and_tokens(ctx, actor):
    before = await counts(ctx)
    with pytest.raises(PermissionDenied):
        await identity.create_user(ctx, actor, new_user())
    with pytest.raises(PermissionDenied):
        await identity.create_token(ctx, actor, identity.NewToken("t", TokenScope.PROVIDER, TokenAccess.READ))
    if not actor.read_only:  # reading users is not a write: a read-only admin (no such token exists) may
        with pytest.raises(PermissionDenied):
            await identity.page_users(ctx, actor)
    with pytest.raises(PermissionDenied):
        await identity.list_tokens(ctx, actor)
    assert await counts(ctx) == before


# ---- logging in --------------------------------------------------------------------------------


async def test_a_wrong_password_and_an_unknown_account_get_the_same_answer(ctx):
    user = await identity.create_user(ctx, ADMIN, new_user())
    before = await counts(ctx)
    answers = set()
    for address, password in ((user.email, "not the password"), (email(), PASSWORD)):
        with pytest.raises(AuthenticationFailed) as refused:
            await identity.log_in(ctx, address, password)
        answers.add((refused.value.code, refused.value.message))
    assert answers == {(ErrorCode.UNAUTHENTICATED, WRONG)}
    assert await counts(ctx) == before  # no session, no audit row (only the failures are kept)


async def test_an_inactive_user_cannot_log_in_and_its_sessions_end(ctx):
    user = await identity.create_user(ctx, ADMIN, new_user())
    login = await identity.log_in(ctx, user.email, PASSWORD)
    async with ctx.db.write() as session:
        await session.execute(update(User).where(User.id == user.id).values(active=False))
    with pytest.raises(AuthenticationFailed, match=WRONG):
        await identity.log_in(ctx, user.email, PASSWORD)
    with pytest.raises(AuthenticationFailed, match="your session has ended"):
        await identity.session_actor(ctx, login.session_secret)


async def fail(ctx: AppContext, address: str, times: int = 1) -> None:
    for _ in range(times):
        with pytest.raises(AuthenticationFailed):
            await identity.log_in(ctx, address, "not the password", source_address="192.0.2.1")


# Throttling (per account and source address, slowing down, never locking) is in test_login_throttle.py.


async def test_a_login_opens_a_new_session_and_ends_the_one_presented(ctx, clock):
    user = await identity.create_user(ctx, ADMIN, new_user(kind=UserKind.STAFF, staff_role=StaffRole.ADMIN))
    first = await identity.log_in(ctx, user.email, PASSWORD)
    actor, csrf = await identity.session_actor(ctx, first.session_secret)
    assert (actor.kind, actor.roles, actor.user_id, actor.ref, actor.interface) == (
        "staff", frozenset({"admin"}), user.id, f"user:{user.id}", "portal"
    )
    assert csrf == first.csrf_token
    row = await stored(ctx, UserSession, hashlib.sha256(first.session_secret.encode()).hexdigest())
    assert row is not None and row.expires_at == NOW + identity.SESSION_LIFETIME  # only the hash is the key

    clock.instant = NOW + timedelta(minutes=1)
    second = await identity.log_in(ctx, user.email, PASSWORD, previous_session=first.session_secret)
    assert second.session_secret != first.session_secret and second.csrf_token != first.csrf_token
    with pytest.raises(AuthenticationFailed) as ended:
        await identity.session_actor(ctx, first.session_secret)
    assert ended.value.message == "your session has ended; please log in again"
    assert (await identity.session_actor(ctx, second.session_secret))[0].user_id == user.id
    assert (await stored(ctx, User, user.id)).last_login_at == clock.instant

    await identity.log_out(ctx, second.session_secret)
    with pytest.raises(AuthenticationFailed, match="your session has ended"):
        await identity.session_actor(ctx, second.session_secret)
    with pytest.raises(AuthenticationFailed, match="your session is not valid; please log in"):
        await identity.session_actor(ctx, "never-issued")


async def test_a_session_lasts_twelve_hours(ctx, clock):
    user = await identity.create_user(ctx, ADMIN, new_user())
    login = await identity.log_in(ctx, user.email, PASSWORD)
    assert login.expires_at == NOW + timedelta(hours=12)
    clock.instant = NOW + timedelta(hours=12) - timedelta(seconds=1)
    await identity.session_actor(ctx, login.session_secret)
    clock.instant = NOW + timedelta(hours=12)
    with pytest.raises(AuthenticationFailed) as expired:
        await identity.session_actor(ctx, login.session_secret)
    assert expired.value.message == "your session has expired; please log in again"


async def test_a_login_is_audited_and_a_failure_is_not(ctx):
    user = await identity.create_user(ctx, ADMIN, new_user())
    await fail(ctx, user.email)
    await identity.log_in(ctx, user.email, PASSWORD)
    async with ctx.db.read() as session:
        entries = list(await session.scalars(
            select(AuditEntry).where(AuditEntry.target_id == str(user.id)).order_by(AuditEntry.action)
        ))
    assert [(e.action, e.actor_ref, e.interface) for e in entries] == [
        ("session.login", f"user:{user.id}", "portal"),
        ("user.create", "system:tests", "cli"),
    ]


# ---- API tokens --------------------------------------------------------------------------------


async def test_a_token_secret_is_shown_once_and_stored_hashed(ctx, customer):
    token, secret = await identity.create_token(
        ctx, ADMIN, identity.NewToken(" Reporting ", TokenScope.CUSTOMER, TokenAccess.READ, customer_id=customer.id)
    )
    prefix, _, raw = secret.removeprefix("ent_").partition("_")
    assert secret.startswith("ent_") and prefix == token.prefix and len(raw) >= 32
    row = await stored(ctx, ApiToken, token.id)
    assert row.secret_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in row.secret_hash and secret not in row.secret_hash
    assert (row.name, row.created_by, row.created_at, row.last_used_at) == ("Reporting", "system:tests", NOW, None)
    listed = {t.id: t for t in await identity.list_tokens(ctx, ADMIN)}
    assert listed[token.id].secret_hash == row.secret_hash  # the service never keeps the secret itself

    actor = await identity.token_actor(ctx, secret)
    assert (actor.kind, actor.customer_id, actor.read_only, actor.ref, actor.interface) == (
        "customer", customer.id, True, f"token:{token.id}", "graphql"
    )
    assert (await stored(ctx, ApiToken, token.id)).last_used_at == NOW


async def test_what_each_token_scope_stands_for(ctx, customer, partner):
    made = {
        scope: await identity.create_token(ctx, ADMIN, identity.NewToken(f"{scope}", scope, TokenAccess.READ_WRITE, **target))
        for scope, target in (
            (TokenScope.CUSTOMER, {"customer_id": customer.id}),
            (TokenScope.PARTNER, {"partner_id": partner.id}),
            (TokenScope.PROVIDER, {}),
        )
    }
    actors = {scope: await identity.token_actor(ctx, secret) for scope, (_, secret) in made.items()}
    assert (actors[TokenScope.CUSTOMER].kind, actors[TokenScope.CUSTOMER].customer_id) == ("customer", customer.id)
    assert (actors[TokenScope.PARTNER].kind, actors[TokenScope.PARTNER].partner_id) == ("partner", partner.id)
    assert (actors[TokenScope.PROVIDER].kind, actors[TokenScope.PROVIDER].roles) == ("staff", frozenset({"integrator"}))
    assert not any(a.read_only for a in actors.values())


async def test_token_scope_and_target_must_agree(ctx, customer, partner):
    before = await counts(ctx)
    cases = [
        (TokenScope.CUSTOMER, {}, "customerId", "a customer token takes customerId only"),
        (TokenScope.CUSTOMER, {"customer_id": customer.id, "partner_id": partner.id}, "customerId",
         "a customer token takes customerId only"),
        (TokenScope.PARTNER, {"customer_id": customer.id}, "partnerId", "a partner token takes partnerId only"),
        (TokenScope.PROVIDER, {"partner_id": partner.id}, "scope", "a provider token takes no customer or partner"),
    ]
    for scope, target, field, message in cases:
        with pytest.raises(ValidationFailed) as refused:
            await identity.create_token(ctx, ADMIN, identity.NewToken("t", scope, TokenAccess.READ, **target))
        assert (refused.value.field, refused.value.message) == (field, message)
    with pytest.raises(ValidationFailed, match="the expiry must be in the future"):
        await identity.create_token(ctx, ADMIN, identity.NewToken("t", TokenScope.PROVIDER, TokenAccess.READ, expires_at=NOW))
    with pytest.raises(ValidationFailed, match="name must be 1 to 200 characters"):
        await identity.create_token(ctx, ADMIN, identity.NewToken(" ", TokenScope.PROVIDER, TokenAccess.READ))
    with pytest.raises(NotFound):
        await identity.create_token(
            ctx, ADMIN, identity.NewToken("t", TokenScope.CUSTOMER, TokenAccess.READ, customer_id=uuid.uuid4())
        )
    assert await counts(ctx) == before


async def test_bad_tokens_are_refused_with_the_reason(ctx, clock):
    token, secret = await identity.create_token(
        ctx, ADMIN,
        identity.NewToken("t", TokenScope.PROVIDER, TokenAccess.READ, expires_at=NOW + timedelta(hours=1)),
    )
    malformed = "the bearer token is malformed: expected ent_<prefix>_<secret>"
    for presented, message in (
        ("", malformed),
        ("not-a-token", malformed),
        (secret.replace("ent_", "xyz_", 1), malformed),
        (f"ent_{token.prefix}", malformed),
        (f"ent_{token.prefix}_wrong-secret", "the bearer token is not valid"),
        (f"ent_000000000000_{secret.split('_', 2)[2]}", "the bearer token is not valid"),
    ):
        with pytest.raises(AuthenticationFailed) as refused:
            await identity.token_actor(ctx, presented)
        assert refused.value.message == message, presented

    clock.instant = NOW + timedelta(hours=1)
    with pytest.raises(AuthenticationFailed) as expired:
        await identity.token_actor(ctx, secret)
    assert expired.value.message == "the bearer token expired at 2026-03-10T13:00:00+00:00"

    clock.instant = NOW
    await identity.token_actor(ctx, secret)
    revoked = await identity.revoke_token(ctx, ADMIN, token.id)
    assert revoked.revoked_at == NOW
    with pytest.raises(AuthenticationFailed) as refused:
        await identity.token_actor(ctx, secret)
    assert refused.value.message == "the bearer token was revoked at 2026-03-10T12:00:00+00:00"


async def test_revoking_twice_audits_once_and_an_unknown_token_is_not_found(ctx):
    token, _ = await identity.create_token(ctx, ADMIN, identity.NewToken("t", TokenScope.PROVIDER, TokenAccess.READ))
    await identity.revoke_token(ctx, ADMIN, token.id)
    before = await counts(ctx)
    again = await identity.revoke_token(ctx, ADMIN, token.id)
    assert again.revoked_at == NOW
    missing = uuid.uuid4()
    with pytest.raises(NotFound) as refused:
        await identity.revoke_token(ctx, ADMIN, missing)
    assert (refused.value.message, refused.value.field) == (f"API token {missing} does not exist", "id")
    assert await counts(ctx) == before


async def test_a_token_past_its_expiry_cannot_be_created(ctx):
    with pytest.raises(ValidationFailed):
        await identity.create_token(
            ctx, ADMIN, identity.NewToken("t", TokenScope.PROVIDER, TokenAccess.READ, expires_at=NOW - timedelta(days=1))
        )

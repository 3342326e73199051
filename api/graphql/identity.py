"""GraphQL of identities: the caller, users, API tokens and the audit log."""

from __future__ import annotations

from datetime import datetime

import strawberry
import strawberry.scalars
from strawberry.types import Info

from api.graphql.context import RequestContext
from api.graphql.errors import (
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
    mutation,
    result_union,
)
from api.graphql.ids import opt_id, optional_id, require_id
from api.graphql.paging import PageInfo
from api.graphql.rows import from_row
from api.models import ApiToken, AuditEntry, StaffRole, TokenAccess, TokenScope, User, UserKind
from api.services import audit, identity
from api.services.paging import encode_cursor

__all__ = [
    "ApiTokenType",
    "AuditEntryConnection",
    "AuditEntryEdge",
    "AuditEntryType",
    "CreateApiTokenInput",
    "CreateApiTokenResult",
    "CreateApiTokenSuccess",
    "CreateUserInput",
    "CreateUserResult",
    "CreateUserSuccess",
    "IdentityMutation",
    "IdentityQuery",
    "RevokeApiTokenResult",
    "RevokeApiTokenSuccess",
    "StaffRoleEnum",
    "TokenAccessEnum",
    "TokenScopeEnum",
    "UserConnection",
    "UserEdge",
    "UserKindEnum",
    "UserType",
    "ViewerType",
]


@strawberry.type(name="Viewer", description="The caller, as the access policy sees it.")
class ViewerType:
    kind: str
    name: str
    roles: list[str]
    customer_id: strawberry.ID | None
    partner_id: strawberry.ID | None
    read_only: bool


@strawberry.type(name="User")
class UserType:
    id: strawberry.ID
    email: str
    name: str
    kind: str
    staff_role: str | None
    customer_id: strawberry.ID | None
    partner_id: strawberry.ID | None
    active: bool
    last_login_at: datetime | None

    @classmethod
    def build(cls, user: User) -> UserType:
        return from_row(
            cls, user, kind=user.kind.value, staff_role=None if user.staff_role is None else user.staff_role.value
        )


@strawberry.type
class UserEdge:
    cursor: str
    node: UserType


@strawberry.type
class UserConnection:
    edges: list[UserEdge]
    page_info: PageInfo


@strawberry.type(name="ApiToken", description="An integrator's token; its secret is shown only when created.")
class ApiTokenType:
    id: strawberry.ID
    name: str
    prefix: str
    scope: str
    access: str
    customer_id: strawberry.ID | None
    partner_id: strawberry.ID | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    @classmethod
    def build(cls, token: ApiToken) -> ApiTokenType:
        return from_row(cls, token, scope=token.scope.value, access=token.access.value)


@strawberry.type(name="AuditEntry", description="One change: who, for whom, what, when, through which interface.")
class AuditEntryType:
    id: strawberry.ID
    occurred_at: datetime
    actor_kind: str
    actor_ref: str
    actor_name: str
    partner_id: strawberry.ID | None
    on_behalf_of_customer_id: strawberry.ID | None
    interface: str
    action: str
    target_type: str
    target_id: str
    detail: strawberry.scalars.JSON

    @classmethod
    def build(cls, entry: AuditEntry) -> AuditEntryType:
        return from_row(cls, entry)


@strawberry.type
class AuditEntryEdge:
    cursor: str
    node: AuditEntryType


@strawberry.type
class AuditEntryConnection:
    edges: list[AuditEntryEdge]
    page_info: PageInfo


UserKindEnum = strawberry.enum(UserKind, name="UserKind")


StaffRoleEnum = strawberry.enum(StaffRole, name="StaffRole")


TokenScopeEnum = strawberry.enum(TokenScope, name="TokenScope")


TokenAccessEnum = strawberry.enum(TokenAccess, name="TokenAccess")


@strawberry.input
class CreateUserInput:
    email: str
    name: str
    password: str = strawberry.field(description="At least 12 characters; stored only as an argon2 hash.")
    kind: UserKindEnum
    staff_role: StaffRoleEnum | None = None
    customer_id: strawberry.ID | None = None
    partner_id: strawberry.ID | None = None


@strawberry.input
class CreateApiTokenInput:
    name: str
    scope: TokenScopeEnum
    access: TokenAccessEnum
    customer_id: strawberry.ID | None = None
    partner_id: strawberry.ID | None = None
    expires_at: datetime | None = None


@strawberry.type
class CreateUserSuccess:
    user: UserType


@strawberry.type
class CreateApiTokenSuccess:
    token: ApiTokenType
    secret: str = strawberry.field(description="The bearer token. Shown this once; only its hash is kept.")


@strawberry.type
class RevokeApiTokenSuccess:
    token: ApiTokenType


CreateUserResult = result_union(
    "CreateUserResult", CreateUserSuccess, ValidationError, NotFoundError, ConflictError, PermissionDeniedError
)


CreateApiTokenResult = result_union(
    "CreateApiTokenResult", CreateApiTokenSuccess, ValidationError, NotFoundError, PermissionDeniedError
)


RevokeApiTokenResult = result_union("RevokeApiTokenResult", RevokeApiTokenSuccess, NotFoundError, PermissionDeniedError)


@strawberry.type
class IdentityQuery:
    @strawberry.field(description="Who the caller is, as the access policy sees it.")
    def me(self, info: Info[RequestContext, None]) -> ViewerType:
        actor = info.context.actor
        return ViewerType(
            kind=actor.kind,
            name=actor.name,
            roles=sorted(actor.roles),
            customer_id=opt_id(actor.customer_id),
            partner_id=opt_id(actor.partner_id),
            read_only=actor.read_only,
        )

    @strawberry.field(description="Users by e-mail address, a page at a time (admins only).")
    async def users(
        self, info: Info[RequestContext, None], first: int = 50, after: str | None = None
    ) -> UserConnection:
        ctx = info.context
        page = await identity.page_users(ctx.app, ctx.actor, first=first, after=after)
        return UserConnection(
            edges=[UserEdge(cursor=identity.user_cursor(u), node=UserType.build(u)) for u in page.items],
            page_info=PageInfo.of(page),
        )

    @strawberry.field(description="API tokens, without their secrets (admins only).")
    async def api_tokens(self, info: Info[RequestContext, None]) -> list[ApiTokenType]:
        ctx = info.context
        return [ApiTokenType.build(t) for t in await identity.list_tokens(ctx.app, ctx.actor)]

    @strawberry.field(description="The audit log, newest first (staff only).")
    async def audit_log(
        self,
        info: Info[RequestContext, None],
        first: int = 50,
        after: str | None = None,
        customer_id: strawberry.ID | None = None,
        action: str | None = None,
    ) -> AuditEntryConnection:
        ctx = info.context
        page = await audit.audit_page(
            ctx.app,
            ctx.actor,
            first=first,
            after=after,
            customer_id=None if customer_id is None else require_id(customer_id, "customer", "customerId"),
            action=action,
        )
        return AuditEntryConnection(
            edges=[
                AuditEntryEdge(cursor=encode_cursor(e.occurred_at, e.id), node=AuditEntryType.build(e))
                for e in page.entries
            ],
            page_info=PageInfo.of(page),
        )


@strawberry.type
class IdentityMutation:
    @mutation(description="Create a user (admins only).")
    async def create_user(self, info: Info[RequestContext, None], input: CreateUserInput) -> CreateUserResult:
        ctx = info.context
        user = await identity.create_user(
            ctx.app,
            ctx.actor,
            identity.NewUser(
                email=input.email,
                name=input.name,
                password=input.password,
                kind=UserKind(input.kind.value),
                staff_role=None if input.staff_role is None else StaffRole(input.staff_role.value),
                customer_id=optional_id(input.customer_id, "customer", "customerId"),
                partner_id=optional_id(input.partner_id, "partner", "partnerId"),
            ),
        )
        return CreateUserSuccess(user=UserType.build(user))

    @mutation(description="Create an API token (admins only); the secret is in the result, once.")
    async def create_api_token(
        self, info: Info[RequestContext, None], input: CreateApiTokenInput
    ) -> CreateApiTokenResult:
        ctx = info.context
        token, secret = await identity.create_token(
            ctx.app,
            ctx.actor,
            identity.NewToken(
                name=input.name,
                scope=TokenScope(input.scope.value),
                access=TokenAccess(input.access.value),
                customer_id=optional_id(input.customer_id, "customer", "customerId"),
                partner_id=optional_id(input.partner_id, "partner", "partnerId"),
                expires_at=input.expires_at,
            ),
        )
        return CreateApiTokenSuccess(token=ApiTokenType.build(token), secret=secret)

    @mutation(description="Revoke an API token (admins only); it stops working at once.")
    async def revoke_api_token(self, info: Info[RequestContext, None], id: strawberry.ID) -> RevokeApiTokenResult:
        ctx = info.context
        token = await identity.revoke_token(ctx.app, ctx.actor, require_id(id, "API token", "id"))
        return RevokeApiTokenSuccess(token=ApiTokenType.build(token))

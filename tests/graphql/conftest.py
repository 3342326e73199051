"""GraphQL test helpers: callers with real credentials (bearer tokens, or session cookie plus CSRF header)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from api.auth import CSRF_HEADER, SESSION_COOKIE
from api.models import ApiToken, AuditEntry, LedgerEntry, PartnerCustomer, StaffRole, TokenAccess, TokenScope, User, UserKind
from api.services import identity
from api.services.context import AppContext
from tests.conftest import ADMIN, unique

PASSWORD = "graphql password, long enough"


class Caller:
    """One HTTP client with one set of credentials."""

    def __init__(self, http: httpx.AsyncClient):
        self.http = http

    async def post(self, query: str, variables: dict[str, Any] | None = None, **kwargs: Any) -> httpx.Response:
        return await self.http.post("/graphql", json={"query": query, "variables": variables or {}}, **kwargs)

    async def data(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await self.post(query, variables)
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body, body["errors"]
        return body["data"]


class Connect:
    def __init__(self, app: Any, ctx: AppContext):
        self.app, self.ctx = app, ctx
        self.opened: list[httpx.AsyncClient] = []

    def anonymous(self, headers: dict[str, str] | None = None) -> Caller:
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://testserver", headers=headers)
        self.opened.append(http)
        return Caller(http)

    def bearer(self, secret: str) -> Caller:
        return self.anonymous({"Authorization": f"Bearer {secret}"})

    async def token(self, scope: TokenScope = TokenScope.PROVIDER, access: TokenAccess = TokenAccess.READ_WRITE,
                    **target: Any) -> tuple[Caller, ApiToken, str]:
        token, secret = await identity.create_token(
            self.ctx, ADMIN, identity.NewToken(unique("token"), scope, access, **target)
        )
        return self.bearer(secret), token, secret

    async def user(self, kind: UserKind = UserKind.STAFF, **fields: Any) -> tuple[Caller, User, identity.Login]:
        if kind == UserKind.STAFF:
            fields.setdefault("staff_role", StaffRole.ADMIN)
        user = await identity.create_user(self.ctx, ADMIN, identity.NewUser(
            email=f"{unique('gql')}@auth.example", name=fields.pop("name", "GraphQL User"), password=PASSWORD,
            kind=kind, **fields,
        ))
        login = await identity.log_in(self.ctx, user.email, PASSWORD)
        caller = self.anonymous({CSRF_HEADER: login.csrf_token})
        caller.http.cookies.set(SESSION_COOKIE, login.session_secret)
        return caller, user, login

    async def close(self) -> None:
        for http in self.opened:
            await http.aclose()


@pytest.fixture
async def connect(settings, database, clock, ctx) -> AsyncIterator[Connect]:  # type: ignore[no-untyped-def]
    from api.app import create_app

    made = Connect(create_app(settings, database=database, clock=clock), ctx)
    yield made
    await made.close()


async def table_counts(ctx: AppContext) -> dict[str, int]:
    async with ctx.db.read() as session:
        return {
            m.__tablename__: await session.scalar(select(func.count()).select_from(m))
            for m in (AuditEntry, LedgerEntry, PartnerCustomer, User, ApiToken)
        }

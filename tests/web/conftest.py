"""Portal fixtures: users with unique e-mail addresses, and clients logged in through the login form."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from api.models import StaffRole, UserKind
from api.services import identity
from tests.conftest import ADMIN, unique

PASSWORD = "a long enough password"


def hidden_csrf(page: str) -> str:
    found = re.search(r'<input type="hidden" name="csrf_token" value="([^"]*)">', page)
    assert found, page
    return html.unescape(found.group(1))


async def log_in(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD, *, next: str | None = None
) -> httpx.Response:
    """What a browser does: get the form (and its CSRF cookie), post it back."""
    form_page = await client.get("/login", params={"next": next} if next else None)
    assert form_page.status_code == 200, form_page.text
    data = {"email": email, "password": password, "csrf_token": hidden_csrf(form_page.text)}
    if next is not None:
        data["next"] = next
    return await client.post("/login", data=data)


@pytest.fixture
def make_user(ctx):  # type: ignore[no-untyped-def]
    async def make(kind: UserKind = UserKind.STAFF, **fields: Any):  # type: ignore[no-untyped-def]
        if kind == UserKind.STAFF:
            fields.setdefault("staff_role", StaffRole.ADMIN)
        email = fields.pop("email", f"{unique('user')}@portal.example")
        return await identity.create_user(
            ctx,
            ADMIN,
            identity.NewUser(
                email=email, name=fields.pop("name", "Portal User"), password=fields.pop("password", PASSWORD),
                kind=kind, **fields,
            ),
        )

    return make


@pytest.fixture
def logged_in(anonymous_client, make_user):  # type: ignore[no-untyped-def]
    """Log the anonymous client in as a new user of the given kind; returns the user."""

    async def go(kind: UserKind = UserKind.STAFF, **fields: Any):  # type: ignore[no-untyped-def]
        user = await make_user(kind, **fields)
        response = await log_in(anonymous_client, user.email)
        assert response.status_code == 303, response.text
        return user

    return go


@pytest.fixture
async def portal(anonymous_client, logged_in) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    """A client logged in through the form as a staff admin: it holds the session cookie, nothing else."""
    await logged_in(UserKind.STAFF, name="Portal Admin")
    yield anonymous_client

"""Who is calling, from an HTTP request: a bearer API token, or a portal session cookie."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from starlette.requests import HTTPConnection

from api.services import identity
from api.services.context import Actor, AppContext
from api.services.errors import AuthenticationFailed

__all__ = ["CSRF_HEADER", "SESSION_COOKIE", "Credentials", "authenticate", "csrf_matches"]

SESSION_COOKIE = "entitle_session"
CSRF_HEADER = "X-CSRF-Token"


@dataclass(frozen=True)
class Credentials:
    actor: Actor
    session_secret: str | None = None  # set when the caller came with a session cookie
    csrf_token: str | None = None


async def authenticate(request: HTTPConnection, ctx: AppContext, interface: str) -> Credentials | None:
    """The caller's credentials; None when it sent none; AuthenticationFailed when they are bad.
    A bearer token wins over a cookie."""
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise AuthenticationFailed("send the API token as 'Authorization: Bearer <token>'")
        return Credentials(await identity.token_actor(ctx, value.strip(), interface))
    secret = request.cookies.get(SESSION_COOKIE)
    if secret:
        actor, csrf = await identity.session_actor(ctx, secret)
        return Credentials(actor.via(interface), secret, csrf)
    return None


def csrf_matches(expected: str | None, presented: str | None) -> bool:
    return bool(expected and presented) and hmac.compare_digest(expected, presented)

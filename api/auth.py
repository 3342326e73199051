"""Who is calling, from a request; shared by GraphQL and the portal."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from api.services.context import Actor

__all__ = ["request_actor"]


def request_actor(request: HTTPConnection) -> Actor:
    """Until identities and tokens exist, every caller acts as the provider's API client; the access
    policy in api.services.policy already decides everything from the actor returned here."""
    return Actor(kind="staff", ref="api-client", name="API client", roles=frozenset({"admin"}))

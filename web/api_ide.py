"""GraphiQL, served entirely from this application (assets vendored in static/vendor): it sends the session
cookie and its CSRF token with every operation, so a signed-in user explores the API without a token."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from web.layout import app_context, render
from web.security import CONTENT_SECURITY_POLICY
from web.session import PortalSession, portal_view

__all__ = ["GRAPHIQL_POLICY", "graphiql_page"]

# GraphiQL's editor writes style attributes and <style> elements: this page alone allows inline styles.
# Scripts stay 'self' only: the page's start-up code is a static file too.
GRAPHIQL_POLICY = CONTENT_SECURITY_POLICY.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")


@portal_view
async def graphiql_page(request: Request, session: PortalSession) -> Response:
    if app_context(request).settings.production:
        raise HTTPException(404, "GraphiQL is not served in production")
    response = render(request, "graphiql.html", None, {})
    response.headers["Content-Security-Policy"] = GRAPHIQL_POLICY
    return response

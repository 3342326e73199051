"""The portal's routes, its static files, error pages and middleware, as the application mounts them.

Each page area has its module (auth, home, tickets, queue, activities, scope, programs, reports, api_ide);
sessions and CSRF are in `web.session`, layout and formatting in `web.layout`."""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from api.services.errors import DomainError, NotFound, OutOfScope, PermissionDenied
from web import activities, api_ide, auth, home, programs, queue, reports, scope, tickets
from web.layout import HERE, render, templates
from web.security import SecurityHeaders
from web.session import (
    CSRF_FIELD,
    CSRF_REFUSAL,
    LOGIN_CSRF_COOKIE,
    PortalSession,
    enter,
    live_session,
    portal_view,
    require_csrf,
    safe_next,
)

__all__ = [
    "CSRF_FIELD",
    "CSRF_REFUSAL",
    "LOGIN_CSRF_COOKIE",
    "PortalSession",
    "exception_handlers",
    "middleware",
    "portal_routes",
    "portal_view",
    "require_csrf",
    "safe_next",
    "static_mount",
    "templates",
]


def portal_routes() -> list[Route]:
    return [
        Route("/login", auth.login, methods=["GET", "POST"], name="login"),
        Route("/logout", auth.logout, methods=["POST"], name="logout"),
        Route("/", home.home, name="home"),
        Route("/acting-for", home.acting_for, methods=["GET", "POST"], name="acting_for"),
        Route("/activities", home.activities_index, name="activities"),
        Route("/tickets", tickets.ticket_list, name="tickets"),
        Route("/tickets/new", tickets.file_ticket, methods=["GET", "POST"], name="file_ticket"),
        Route("/tickets/{ticket_id}", tickets.ticket_page, name="ticket"),
        Route("/tickets/{ticket_id}/sla", tickets.ticket_sla, name="ticket_sla"),
        Route("/tickets/{ticket_id}/comments", tickets.add_comment, methods=["POST"], name="add_comment"),
        Route("/tickets/{ticket_id}/status", tickets.change_status, methods=["POST"], name="change_status"),
        Route("/tickets/{ticket_id}/time", tickets.log_time, methods=["POST"], name="log_time"),
        Route("/queue", queue.queue_page, name="queue"),
        Route("/out-of-scope", scope.scope_page, name="scope"),
        Route("/contracts", activities.contracts_page, name="contracts"),
        Route("/contracts/{contract_id}", activities.contract_page, name="contract"),
        Route("/contracts/{contract_id}/bookings", activities.book, methods=["POST"], name="book"),
        Route("/contracts/{contract_id}/feeds", activities.create_feed, methods=["POST"], name="create_feed"),
        Route(
            "/contracts/{contract_id}/feeds/{feed_id}/revoke", activities.revoke_feed, methods=["POST"],
            name="revoke_feed",
        ),
        Route("/bookings/{booking_id}/cancel", activities.cancel_booking, methods=["POST"], name="cancel_booking"),
        Route("/bookings/{booking_id}/schedule", activities.schedule_booking, methods=["POST"], name="schedule_booking"),
        Route("/bookings/{booking_id}/deliver", activities.deliver_booking, methods=["POST"], name="deliver_booking"),
        Route("/programs", programs.programs_page, name="programs"),
        Route("/reports", reports.reports_page, name="reports"),
        Route("/api", api_ide.graphiql_page, name="api"),
        Route("/calendar/{secret}.ics", activities.calendar_feed, name="calendar_feed"),
    ]


def static_mount() -> Mount:
    return Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static")


def middleware() -> list[Middleware]:
    return [Middleware(SecurityHeaders)]


async def _with_layout(request: Request) -> None:
    """An error page keeps the navigation: the viewer's session, if it has a live one."""
    if getattr(request.state, "portal", None) is not None and hasattr(request.state, "nav"):
        return
    session = await live_session(request)
    if isinstance(session, PortalSession):
        await enter(request, session)


async def http_error(request: Request, exc: HTTPException) -> Response:
    await _with_layout(request)
    response = render(
        request,
        "error.html",
        "partials/error.html",
        {"status": exc.status_code, "detail": exc.detail},
        status_code=exc.status_code,
        headers=dict(exc.headers or {}),
    )
    response.headers.setdefault("Cache-Control", "no-store")
    return response


async def domain_error(request: Request, exc: DomainError) -> Response:
    """A refusal no page handled: what does not exist (or is not the viewer's) is a 404, like everywhere."""
    status = 404 if isinstance(exc, (NotFound, OutOfScope)) else 403 if isinstance(exc, PermissionDenied) else 400
    return await http_error(request, HTTPException(status, exc.message))


def exception_handlers() -> dict[Any, Any]:
    return {HTTPException: http_error, DomainError: domain_error}

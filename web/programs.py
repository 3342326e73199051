"""The loaded programs and their plans (staff)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from api.services import programs
from web.layout import app_context, render
from web.session import PortalSession, portal_view

__all__ = ["programs_page"]


@portal_view
async def programs_page(request: Request, session: PortalSession) -> Response:
    found = await programs.list_programs(app_context(request), session.actor)
    return render(request, "programs.html", None, {"programs": found})

"""The staff queue: open tickets by the nearest SLA due instant, at risk and breached marked in words."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from api.services import dashboards, policy
from api.services.errors import ValidationFailed
from web.forms import parse_uuid
from web.layout import app_context, pager, render
from web.session import PortalSession, portal_view

__all__ = ["queue_page"]


@portal_view
async def queue_page(request: Request, session: PortalSession) -> Response:
    actor = session.actor
    if not policy.may(actor, "ticket.update"):
        raise HTTPException(404, "the queue is for the support team")
    query = request.query_params
    chosen = {name: query.get(name, "").strip() for name in ("program", "severity", "customer", "assignee")}
    after = query.get("after") or None
    try:
        queue = await dashboards.staff_queue(
            app_context(request),
            actor,
            program_code=chosen["program"] or None,
            severity=chosen["severity"] or None,
            customer_id=parse_uuid(chosen["customer"]),
            assignee_id=parse_uuid(chosen["assignee"]),
            first=dashboards.QUEUE_PAGE,
            after=after,
        )
    except ValidationFailed as exc:
        raise HTTPException(400, exc.message) from None
    kept = {k: v for k, v in chosen.items() if v}
    context = {
        "queue": queue,
        "filters": chosen,
        **pager("/queue", kept, after=after, has_next_page=queue.has_next_page, end_cursor=queue.end_cursor),
    }
    return render(request, "queue.html", "partials/queue_rows.html", context)

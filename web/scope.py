"""What is out of scope and out of support for the customer in view, each item with its source."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from api.services import access, parties
from api.services.errors import DomainError
from web.forms import parse_uuid
from web.layout import app_context, render
from web.session import PortalSession, portal_view

__all__ = ["scope_page"]

LIST_NAMES = {"out_of_scope": "Out of scope", "out_of_support": "Out of support"}
SOURCE_NAMES = {"plan": "plan", "program": "program", "partner_program": "partner program"}


@portal_view
async def scope_page(request: Request, session: PortalSession) -> Response:
    """The customer in view's lists; staff pick the customer (?customer=)."""
    app, actor = app_context(request), session.actor
    customer_id = request.state.acting.customer_id
    customers = []
    if actor.is_provider:
        wanted = parse_uuid(request.query_params.get("customer"))
        customers = await parties.customer_options(app, actor, wanted)
        customer_id = wanted if wanted in {c.id for c in customers} else (customers[0].id if customers else None)
    entries, refused = [], None
    if customer_id is not None:
        try:
            entries = await access.out_of_scope(app, actor, customer_id)
        except DomainError as exc:
            refused = exc.message
    lists = {name: [e for e in entries if e.list == name] for name in LIST_NAMES}
    named = {c.id: c for c in customers}
    current = named.get(customer_id) if actor.is_provider else (
        request.state.acting.current.customer if request.state.acting.current else None
    )
    return render(
        request, "scope.html", None,
        {"lists": lists, "list_names": LIST_NAMES, "source_names": SOURCE_NAMES, "customers": customers,
         "customer": current, "refused": refused},
    )

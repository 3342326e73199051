"""Tickets: the list (filters and paging, updated in place by htmx), a ticket's page (conversation, SLA
clocks refreshed by polling, reply, status, time), and the filing form."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from api.domain.sla import TargetClock
from api.services import access, contracts, dashboards, filing, parties, policy, tickets
from api.services.deductions import log_time as log_ticket_time
from api.services.errors import DomainError, NotFound, ValidationFailed
from api.services.tickets import STATUSES, DIAGNOSIS_FIELDS, NewTicket
from web.forms import errors_of, parse_uuid, path_id
from web.layout import STATUS_NAMES, TARGET_NAMES, Viewer, app_context, pager, render, utc_now
from web.session import PortalSession, field, flash, portal_view, see_other

__all__ = [
    "add_comment",
    "change_status",
    "clock_text",
    "file_ticket",
    "log_time",
    "ticket_list",
    "ticket_page",
    "ticket_sla",
]

PAGE_SIZE = 20
# The filing form's fields by the services' names for them.
FILING_FIELDS = {
    "customerId": "customer",
    "ticketType": "type",
    "severity": "severity",
    "subject": "subject",
    "description": "description",
    "affectedAccount": "affected_account",
    "stepsFollowed": "steps_followed",
    "expectedResult": "expected_result",
    "scopeItem": "type",
}


# ---- the SLA clocks as people read them ------------------------------------------------------------------


def clock_text(clock: TargetClock, now: datetime, viewer: Viewer) -> dict[str, Any]:
    """One clock: its name, its state in words (with the due instant in the viewer's zone) and its state
    as a word for styling. Server time is the truth: the page polls for a fresh rendering."""
    name = TARGET_NAMES.get(clock.target, clock.target)
    if clock.as_time_permits:
        return {"name": name, "state": "time-permits", "text": "as time permits", "due": None}
    if clock.met_at is not None:
        late = " (late)" if clock.breached else ""
        return {"name": name, "state": "breached" if clock.breached else "met",
                "text": f"met {viewer.instant(clock.met_at)}{late}", "due": clock.due_at}
    if clock.breached:
        overdue = viewer.duration(int((now - clock.due_at).total_seconds())) if clock.due_at else ""
        return {"name": name, "state": "breached",
                "text": f"breached: was due {viewer.instant(clock.due_at)}" + (f", {overdue} ago" if overdue else "")
                if clock.due_at else "breached", "due": clock.due_at}
    if clock.paused or clock.due_at is None:
        return {"name": name, "state": "paused",
                "text": f"paused with {viewer.duration(clock.remaining_seconds)} of open time left", "due": None}
    left = viewer.duration(max(int((clock.due_at - now).total_seconds()), 0))
    state = "at-risk" if clock.at_risk else "running"
    words = "at risk: " if clock.at_risk else ""
    return {"name": name, "state": state, "text": f"{words}due {viewer.instant(clock.due_at)}, in {left}",
            "due": clock.due_at}


# ---- the list ---------------------------------------------------------------------------------------------


def _filters(request: Request) -> dict[str, str]:
    query = request.query_params
    return {name: query.get(name, "").strip() for name in ("status", "severity", "customer", "q")}


@portal_view
async def ticket_list(request: Request, session: PortalSession) -> Response:
    app, actor = app_context(request), session.actor
    chosen = _filters(request)
    after = request.query_params.get("after") or None
    customer_id = parse_uuid(chosen["customer"])
    try:
        page = await tickets.list_tickets(
            app, actor,
            customer_id=customer_id,
            status=chosen["status"] if chosen["status"] in STATUSES else None,
            severity=chosen["severity"] or None,
            text=chosen["q"] or None,
            first=PAGE_SIZE,
            after=after,
        )
    except ValidationFailed as exc:
        raise HTTPException(400, exc.message) from None
    now, share = app.now(), app.settings.sla_at_risk_share
    states = {v.ticket.id: dashboards.sla_state(tickets.ticket_clocks(v, now, share)) for v in page.views}
    names = await parties.get_customers_by_ids(app, actor, list({v.ticket.customer_id for v in page.views}))
    if actor.kind == "partner":
        customers = [c.customer for c in request.state.acting.choices if c.link is not None and c.link.can_file_tickets]
    elif actor.is_provider:
        customers = await parties.customer_options(app, actor, customer_id)
    else:
        customers = []
    kept = {k: v for k, v in chosen.items() if v}
    context = {
        "page": page,
        "states": states,
        "customers_by_id": names,
        "filters": chosen,
        "customers": customers,
        "severities": await dashboards.severity_options(app, actor),
        **pager("/tickets", kept, after=after, has_next_page=page.has_next_page, end_cursor=page.end_cursor),
        "may_file": policy.may(actor, "ticket.create"),
    }
    return render(request, "tickets.html", "partials/ticket_results.html", context)


# ---- one ticket -------------------------------------------------------------------------------------------


async def _ticket_context(request: Request, session: PortalSession, ticket_id: uuid.UUID) -> dict[str, Any]:
    app, actor = app_context(request), session.actor
    views = await tickets.get_tickets(app, actor, [ticket_id])
    if ticket_id not in views:
        raise HTTPException(404, f"ticket {ticket_id} does not exist")
    view = views[ticket_id]
    ticket = view.ticket
    records = (await tickets.ticket_records(app, actor, [ticket_id]))[ticket_id]
    customer = (await parties.get_customers_by_ids(app, actor, [ticket.customer_id])).get(ticket.customer_id)
    link = await dashboards.relation(app, actor, ticket.customer_id)
    offered = view.plan.program.plans.get(view.plan.record.code)
    ticket_type = offered.ticket_types.get(ticket.ticket_type) if offered else None
    severity = offered.severities.get(ticket.severity) if offered else None
    periods = await contracts.entitlements(app, actor, ticket.contract_id)
    return {
        "view": view,
        "ticket": ticket,
        "customer": customer,
        "type_name": ticket_type.name if ticket_type else ticket.ticket_type,
        "severity_name": severity.name if severity else (ticket.severity or "none"),
        "status_name": STATUS_NAMES.get(ticket.status, ticket.status),
        "records": records,
        "clocks": _clocks(request, view),
        "periods": periods,
        "transitions": [(to, STATUS_NAMES.get(to, to)) for to in tickets.allowed_transitions(actor, ticket.status)],
        "may_reply": ticket.status != "closed" and policy.allows(
            actor, "ticket.participate" if actor.kind in ("customer", "partner") else "ticket.update", link=link
        ),
        "may_note": policy.may(actor, "ticket.update"),
        "may_log": ticket.status != "closed" and policy.may(actor, "ticket.update"),
        "unit": lambda code: (view.plan.bucket(code).ledger_unit if view.plan.bucket(code) else "minutes"),
        "bucket_name": lambda code: (view.plan.bucket(code).name if view.plan.bucket(code) else code),
        "errors": {},
        "values": {},
    }


def _clocks(request: Request, view: tickets.TicketView) -> list[dict[str, Any]]:
    app = app_context(request)
    now = utc_now(request)
    return [clock_text(c, now, request.state.viewer) for c in tickets.ticket_clocks(view, now, app.settings.sla_at_risk_share)]


@portal_view
async def ticket_page(request: Request, session: PortalSession) -> Response:
    ticket_id = path_id(request.path_params, "ticket_id", "ticket")
    return render(request, "ticket.html", None, await _ticket_context(request, session, ticket_id))


@portal_view
async def ticket_sla(request: Request, session: PortalSession) -> Response:
    """The SLA clocks alone, as of now: what the ticket page polls."""
    ticket_id = path_id(request.path_params, "ticket_id", "ticket")
    views = await tickets.get_tickets(app_context(request), session.actor, [ticket_id])
    if ticket_id not in views:
        raise HTTPException(404, f"ticket {ticket_id} does not exist")
    context = {"ticket": views[ticket_id].ticket, "clocks": _clocks(request, views[ticket_id])}
    return render(request, "partials/sla.html", "partials/sla.html", context)


async def _refused(
    request: Request, session: PortalSession, ticket_id: uuid.UUID, form: FormData, errors: dict[str, str]
) -> Response:
    """The ticket page again, the refusal beside the field at fault and what was typed kept (422)."""
    context = await _ticket_context(request, session, ticket_id)
    context.update(errors=errors, values={k: field(form, k) for k in form.keys() if k != "csrf_token"})
    return render(request, "ticket.html", None, context, status_code=422)


@portal_view
async def add_comment(request: Request, session: PortalSession) -> Response:
    ticket_id = path_id(request.path_params, "ticket_id", "ticket")
    form = await request.form()
    internal = field(form, "internal") == "on"
    try:
        await tickets.add_comment(app_context(request), session.actor, ticket_id, field(form, "body"), internal=internal)
    except NotFound as exc:
        raise HTTPException(404, exc.message) from None
    except DomainError as exc:
        return await _refused(request, session, ticket_id, form, errors_of(exc, {"body": "body", "internal": "internal"}, "body"))
    response = see_other(request, f"/tickets/{ticket_id}")
    flash(request, response, session, "Internal note added." if internal else "Reply sent.")
    return response


@portal_view
async def change_status(request: Request, session: PortalSession) -> Response:
    ticket_id = path_id(request.path_params, "ticket_id", "ticket")
    form = await request.form()
    to = field(form, "to")
    try:
        await tickets.transition_ticket(app_context(request), session.actor, ticket_id, to, reason=field(form, "reason"))
    except NotFound as exc:
        raise HTTPException(404, exc.message) from None
    except DomainError as exc:
        return await _refused(request, session, ticket_id, form, errors_of(exc, {"to": "to", "reason": "to"}, "to"))
    response = see_other(request, f"/tickets/{ticket_id}")
    flash(request, response, session, f"Status changed to {STATUS_NAMES.get(to, to).lower()}.")
    return response


@portal_view
async def log_time(request: Request, session: PortalSession) -> Response:
    ticket_id = path_id(request.path_params, "ticket_id", "ticket")
    form = await request.form()
    minutes = field(form, "minutes").strip()
    try:
        if not minutes.lstrip("-").isdigit():
            raise ValidationFailed("give the minutes worked as a whole number", field="minutes")
        _, posted = await log_ticket_time(
            app_context(request), session.actor, ticket_id, int(minutes), note=field(form, "note")
        )
    except NotFound as exc:
        raise HTTPException(404, exc.message) from None
    except DomainError as exc:
        return await _refused(request, session, ticket_id, form, errors_of(exc, {"minutes": "minutes", "note": "note"}, "minutes"))
    viewer = request.state.viewer
    deducted = sum(e.quantity for e in posted)
    text = f"Logged {viewer.quantity(int(minutes), 'minutes')} of work"
    text += f"; {viewer.quantity(deducted, 'minutes')} deducted from the support hours." if deducted else "."
    response = see_other(request, f"/tickets/{ticket_id}")
    flash(request, response, session, text)
    return response


# ---- filing -----------------------------------------------------------------------------------------------

_TEXT_FIELDS = ("subject", "description", "affected_account", "steps_followed", "expected_result")


async def _filing_context(
    request: Request, session: PortalSession, values: dict[str, str], errors: dict[str, str]
) -> dict[str, Any]:
    app, actor = app_context(request), session.actor
    customers = await filing.customers_to_file_for(app, actor)
    if not customers:
        raise HTTPException(403, f"{actor.name} may not file tickets")
    ids = {str(c.id) for c in customers}
    wanted = values.get("customer") or str(request.state.acting.customer_id or "")
    customer_id = uuid.UUID(wanted if wanted in ids else str(customers[0].id))
    form = await filing.filing_form(app, actor, customer_id)
    chosen = form.type(values.get("type")) or (form.types[0] if form.types else None)
    severity_codes = [s.code for s in chosen.severities] if chosen else []
    severity = values.get("severity") if values.get("severity") in severity_codes else (severity_codes[0] if severity_codes else "")
    check = None
    if chosen is not None and "type" not in errors:
        try:
            decision = await access.check_filing(app, actor, customer_id, chosen.code)
            check = f"{chosen.name} can be filed for {form.customer.name} under {chosen.contract_reference} ({decision.plan.rules.name})."
        except DomainError as exc:
            errors = {**errors, "type": exc.message}
    diagnosis = bool(chosen and chosen.needs_diagnosis) or any(values.get(f) for f in ("affected_account", "steps_followed", "expected_result"))
    return {
        "customers": customers,
        "show_customer": actor.kind != "customer",
        "form": form,
        "chosen": chosen,
        "severity": severity,
        "values": {**{name: values.get(name, "") for name in _TEXT_FIELDS}, "customer": str(customer_id)},
        "errors": errors,
        "check": check,
        "diagnosis": diagnosis,
        "diagnosis_fields": [(attr, words) for attr, _, words in DIAGNOSIS_FIELDS],
    }


@portal_view
async def file_ticket(request: Request, session: PortalSession) -> Response:
    """GET: the form; POST with intent=reload: the form again for the customer and type chosen (no JavaScript
    needed; htmx posts it on change); POST: file, then the ticket's page with "Ticket filed"."""
    if request.method == "GET":
        values = {k: v for k, v in request.query_params.items()}
        return render(request, "ticket_new.html", "partials/file_form.html", await _filing_context(request, session, values, {}))
    form = await request.form()
    values = {k: field(form, k) for k in form.keys() if k != "csrf_token"}
    if values.get("intent") == "reload":
        context = await _filing_context(request, session, values, {})
        return render(request, "ticket_new.html", "partials/file_form.html", context)
    customer_id = parse_uuid(values.get("customer"))
    try:
        if customer_id is None:
            raise ValidationFailed("choose the customer the ticket is for", field="customerId")
        ticket = await tickets.open_ticket(
            app_context(request),
            session.actor,
            NewTicket(
                customer_id=customer_id,
                ticket_type=values.get("type", ""),
                severity=values.get("severity", ""),
                subject=values.get("subject", ""),
                description=values.get("description", ""),
                affected_account=values.get("affected_account") or None,
                steps_followed=values.get("steps_followed") or None,
                expected_result=values.get("expected_result") or None,
            ),
        )
    except DomainError as exc:
        errors = errors_of(exc, FILING_FIELDS, "form")
        missing = [str(f) for f in exc.details.get("missing", [])]
        if missing:  # beside each missing diagnosis field, in words
            words = {api: text for _, api, text in DIAGNOSIS_FIELDS}
            errors = {FILING_FIELDS[f]: f"Give {words[f]}: it is needed to reproduce the behaviour." for f in missing if f in words}
        context = await _filing_context(request, session, values, errors)
        return render(request, "ticket_new.html", "partials/file_form.html", context, status_code=422)
    response = see_other(request, f"/tickets/{ticket.id}")
    flash(request, response, session, "Ticket filed")
    return response

"""Activities: a contract's page (entitlements, the catalog with sizes and costs, booking and cancelling,
scheduling for the provider, calendar feeds, the latest ledger entries), the contracts list for staff, and
the iCalendar feed itself."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from api.services import bookings, calendar_feeds, contracts, dashboards, ledger, parties, policy, programs
from api.services.errors import DomainError, NotFound, ValidationFailed
from web.forms import errors_of, parse_day, parse_uuid, path_id
from web.layout import app_context, is_htmx, pager, public_base, render
from web.session import TOKEN, PortalSession, field, flash, portal_view, see_other

__all__ = [
    "book",
    "calendar_feed",
    "cancel_booking",
    "contract_page",
    "contracts_page",
    "create_feed",
    "deliver_booking",
    "revoke_feed",
    "schedule_booking",
]

PAGE_SIZE = 50  # contracts a page on /contracts

# The forms of the contract page by the services' names for their fields.
BOOKING_FIELDS = {"activity": "activity", "on": "on", "partnerIds": "partner", "quantity": "activity", "note": "note"}
SCHEDULE_FIELDS = {"startsAt": "starts_at", "durationMinutes": "duration_minutes", "staffEmail": "staff_email"}
FEED_FIELDS = {"name": "name"}


@portal_view
async def contracts_page(request: Request, session: PortalSession) -> Response:
    """The contracts the viewer sees, by reference, a page at a time; `q` finds those whose reference starts with it."""
    app, actor = app_context(request), session.actor
    search = request.query_params.get("q", "").strip()
    after = request.query_params.get("after") or None
    try:
        page = await contracts.page_contracts(app, actor, reference=search or None, first=PAGE_SIZE, after=after)
    except ValidationFailed as exc:
        raise HTTPException(400, exc.message) from None
    customers = await parties.get_customers_by_ids(app, actor, list({c.customer_id for c in page.items}))
    kept = {"q": search} if search else {}
    context = {
        "page": page,
        "customers": customers,
        "search": search,
        **pager("/contracts", kept, after=after, has_next_page=page.has_next_page, end_cursor=page.end_cursor),
    }
    return render(request, "contracts.html", None, context)


async def _contract_context(
    request: Request, session: PortalSession, contract_id: uuid.UUID, on: date | None
) -> dict[str, Any]:
    """Everything the contract page shows, and what the viewer may do there (the policy decides)."""
    app, actor = app_context(request), session.actor
    try:
        # A contract outside the actor's reach is answered exactly like an unknown one.
        contract = await contracts.get_contract(app, actor, contract_id)
        periods = await contracts.entitlements(app, actor, contract_id, on)
        page = await ledger.ledger_page(app, actor, contract_id, first=20)
    except DomainError as exc:
        raise HTTPException(404, exc.message) from None
    plan = (await programs.get_plans_by_ids(app, actor, [contract.plan_id]))[contract.plan_id]
    customers = await parties.get_customers_by_ids(app, actor, [contract.customer_id])
    booked = await bookings.list_bookings(app, actor, contract_id=contract_id, first=50)
    details = await bookings.booking_details(app, actor, [b.id for b in booked.bookings])
    staff_ids = [b.staff_id for b in booked.bookings if b.staff_id]
    if contract.client_manager_id:
        staff_ids.append(contract.client_manager_id)
    link = await dashboards.relation(app, actor, contract.customer_id)
    may = {
        "book": policy.allows(actor, "booking.create", link=link),
        "cancel": policy.allows(actor, "booking.cancel", link=link),
        "manage": policy.may(actor, "booking.manage"),
        "feeds": policy.allows(actor, "feed.manage", link=link),
    }
    feeds = (await calendar_feeds.list_feeds(app, actor, [contract_id]))[contract_id]
    return {
        "contract": contract,
        "plan": plan,
        "customer": customers.get(contract.customer_id),
        "periods": periods,
        "on": on,
        "today": app.today(plan.program.timezone),
        "now": app.now(),
        "entries": page.entries,
        "bookings": booked.bookings,
        "details": details,
        "staff": await contracts.get_staff_by_ids(app, actor, staff_ids) if staff_ids else {},
        "offers": contracts.ContractView(contract, plan).catalog(),
        "partners_offered": await bookings.participants_offered(app, actor, contract_id) if may["book"] else [],
        "feeds": feeds,
        "revocable": {f.id for f in feeds if policy.may_revoke_feed(actor, f.created_by_ref, link=link)},
        "may": may,
        "managed_elsewhere": actor.kind == "partner" and link is not None and not link.managed,
        # Sent back with the booking form as its idempotency key: a form posted twice books once.
        "request_key": uuid.uuid4().hex,
        "errors": {},
        "values": {},
        "failed_booking": None,
        "notice": None,
        "feed_url": None,
    }


@portal_view
async def contract_page(request: Request, session: PortalSession) -> Response:
    contract_id = path_id(request.path_params, "contract_id", "contract")
    try:
        on = parse_day(request.query_params.get("on"))
    except ValidationFailed as exc:
        raise HTTPException(400, exc.message) from None
    context = await _contract_context(request, session, contract_id, on)
    return render(request, "contract.html", "partials/entitlements.html", context)


async def _after_change(
    request: Request,
    session: PortalSession,
    contract_id: uuid.UUID,
    *,
    notice: str | None = None,
    error: DomainError | None = None,
    fields: dict[str, str] | None = None,
    form: FormData | None = None,
    feed_url: str | None = None,
    booking_id: uuid.UUID | None = None,
) -> Response:
    """The answer to a form on the contract page. A success: for a plain form, the page again by a redirect
    with the notice as a flash (a reload repeats nothing; a new feed's address is shown once that way too);
    for htmx, the contract panel swapped in place with the notice. A refusal: the page (or the panel) with
    the reason beside the field at fault and what was typed kept, 422."""
    if error is None and not is_htmx(request):
        response = see_other(request, f"/contracts/{contract_id}")
        flash(request, response, session, notice or "Done.", secret=feed_url)
        return response
    context = await _contract_context(request, session, contract_id, None)
    context.update(notice=notice, feed_url=feed_url)
    if error is not None:
        context["errors"] = errors_of(error, fields or {}, "form")
        context["failed_booking"] = booking_id  # whose form shows the refusal
        context["values"] = {k: field(form, k) for k in form.keys() if k != "csrf_token"} if form else {}
        if form is not None and field(form, "request_key"):
            context["request_key"] = field(form, "request_key")  # the same attempt, sent again, books once
    status = 422 if error is not None else 200
    return render(request, "contract.html", "partials/contract_panel.html", context, status_code=status)


def _form_day(value: str, field_name: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValidationFailed(f"{value!r} is not a date (YYYY-MM-DD)", field=field_name) from None


def _form_ids(form: FormData, name: str) -> list[uuid.UUID]:
    found = [parse_uuid(str(value)) for value in form.getlist(name)]
    if any(ident is None for ident in found):
        raise ValidationFailed("a partner chosen is not one this portal offered", field="partnerIds")
    return [ident for ident in found if ident is not None]


@portal_view
async def book(request: Request, session: PortalSession) -> Response:
    contract_id = path_id(request.path_params, "contract_id", "contract")
    form = await request.form()
    try:
        outcome = await bookings.book_activity(
            app_context(request),
            session.actor,
            bookings.NewBooking(
                contract_id=contract_id,
                activity=field(form, "activity"),
                on=_form_day(field(form, "on"), "on"),
                note=field(form, "note"),
                partner_ids=_form_ids(form, "partner"),
                # One click, one booking: a form sent twice (a double click, a retried request) books once.
                idempotency_key=field(form, "request_key") or None,
            ),
        )
    except NotFound as exc:
        if exc.field == "contractId":
            raise HTTPException(404, exc.message) from None
        return await _after_change(request, session, contract_id, error=exc, fields=BOOKING_FIELDS, form=form)
    except DomainError as exc:
        return await _after_change(request, session, contract_id, error=exc, fields=BOOKING_FIELDS, form=form)
    booking = outcome.booking
    viewer = request.state.viewer
    return await _after_change(
        request, session, contract_id,
        notice=f"Requested {booking.activity_name} for {viewer.day(booking.requested_date)}: the client manager schedules it.",
    )


async def _booking_contract(request: Request, session: PortalSession, booking_id: uuid.UUID) -> uuid.UUID:
    found = await bookings.get_bookings(app_context(request), session.actor, [booking_id])
    if booking_id not in found:
        raise HTTPException(404, f"booking {booking_id} does not exist")
    return found[booking_id].contract_id


async def _on_booking(
    request: Request,
    session: PortalSession,
    act: Callable[[uuid.UUID, uuid.UUID, FormData], Awaitable[str]],
    fields: dict[str, str],
) -> Response:
    """A form about one booking: `act(booking_id, contract_id, form)` changes it through the services and
    says what it did; the answer is that of every form on the contract page."""
    booking_id = path_id(request.path_params, "booking_id", "booking")
    contract_id = await _booking_contract(request, session, booking_id)
    form = await request.form()
    try:
        notice = await act(booking_id, contract_id, form)
    except DomainError as exc:
        return await _after_change(
            request, session, contract_id, error=exc, fields=fields, form=form, booking_id=booking_id
        )
    return await _after_change(request, session, contract_id, notice=notice)


@portal_view
async def cancel_booking(request: Request, session: PortalSession) -> Response:
    async def act(booking_id: uuid.UUID, contract_id: uuid.UUID, form: FormData) -> str:
        outcome = await bookings.cancel_booking(app_context(request), session.actor, booking_id, field(form, "reason"))
        return f"Cancelled {outcome.booking.activity_name}: its units are available again."

    return await _on_booking(request, session, act, {})


@portal_view
async def schedule_booking(request: Request, session: PortalSession) -> Response:
    async def act(booking_id: uuid.UUID, contract_id: uuid.UUID, form: FormData) -> str:
        plan = await _plan_of(request, session, contract_id)
        try:
            local = datetime.fromisoformat(field(form, "starts_at"))
        except ValueError:
            raise ValidationFailed("give the start as a date and a time", field="startsAt") from None
        minutes = field(form, "duration_minutes").strip()
        if minutes and not minutes.isdigit():
            raise ValidationFailed(f"{minutes!r} is not a number of minutes", field="durationMinutes")
        booking = await bookings.schedule_booking(
            app_context(request),
            session.actor,
            bookings.Schedule(
                booking_id=booking_id,
                # The form's local time is the program's: that is the zone the form names.
                starts_at=local.replace(tzinfo=ZoneInfo(plan.program.timezone)),
                duration_minutes=int(minutes) if minutes else None,
                staff_email=field(form, "staff_email").strip() or None,
            ),
        )
        return f"Scheduled {booking.activity_name}."

    return await _on_booking(request, session, act, SCHEDULE_FIELDS)


@portal_view
async def deliver_booking(request: Request, session: PortalSession) -> Response:
    async def act(booking_id: uuid.UUID, contract_id: uuid.UUID, form: FormData) -> str:
        booking = await bookings.deliver_booking(app_context(request), session.actor, booking_id, field(form, "note"))
        return f"{booking.activity_name} delivered."

    return await _on_booking(request, session, act, {})


async def _plan_of(request: Request, session: PortalSession, contract_id: uuid.UUID) -> programs.PlanView:
    app = app_context(request)
    contract = await contracts.get_contract(app, session.actor, contract_id)
    return (await programs.get_plans_by_ids(app, session.actor, [contract.plan_id]))[contract.plan_id]


@portal_view
async def create_feed(request: Request, session: PortalSession) -> Response:
    contract_id = path_id(request.path_params, "contract_id", "contract")
    form = await request.form()
    app = app_context(request)
    try:
        feed, secret = await calendar_feeds.create_feed(app, session.actor, contract_id, field(form, "name"))
    except NotFound as exc:
        raise HTTPException(404, exc.message) from None
    except DomainError as exc:
        return await _after_change(request, session, contract_id, error=exc, fields=FEED_FIELDS, form=form)
    return await _after_change(
        request, session, contract_id,
        notice=f"Created the feed {feed.name!r}. Subscribe your calendar application to this address; it is shown "
        "only this once:",
        feed_url=calendar_feeds.feed_url(app, secret, public_base(request)),
    )


@portal_view
async def revoke_feed(request: Request, session: PortalSession) -> Response:
    feed_id = path_id(request.path_params, "feed_id", "calendar feed")
    contract_id = path_id(request.path_params, "contract_id", "contract")
    try:
        feed = await calendar_feeds.revoke_feed(app_context(request), session.actor, feed_id)
    except NotFound as exc:
        raise HTTPException(404, exc.message) from None
    except DomainError as exc:
        return await _after_change(request, session, contract_id, error=exc, fields={})
    return await _after_change(request, session, feed.contract_id, notice=f"Revoked the feed {feed.name!r}.")


async def calendar_feed(request: Request) -> Response:
    """A contract's iCalendar feed. The secret in the address is the only credential (calendar applications
    send no other); an unknown and a revoked secret get the same 404."""
    secret = request.path_params["secret"]
    try:
        if not TOKEN.fullmatch(secret):
            raise NotFound("calendar feed", "for this address")
        filename, body = await calendar_feeds.render_feed(app_context(request), secret)
    except NotFound:
        return Response("No calendar feed at this address: it was revoked, or never existed.\n", 404,
                        media_type="text/plain")
    return Response(
        body,
        media_type="text/calendar; charset=utf-8",
        headers={
            "Content-Disposition": f'inline; filename="{filename.replace("/", "-")}"',
            "Cache-Control": "private, no-cache",
            "X-Robots-Tag": "noindex",
            "Referrer-Policy": "no-referrer",
        },
    )

"""Booking in the portal: a customer books from the catalog and cancels, the client manager schedules and
marks delivered, everyone sees what expires; forms work with htmx (the contract panel is swapped) and
without it (303, or the page with the refusal); a calendar feed's address is shown once and can be revoked."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

from sqlalchemy import select

from api.auth import CSRF_HEADER
from api.models import Booking, BookingStatus, StaffRole, UserKind
from api.services import bookings, calendar_feeds, parties
from tests.conftest import ADMIN, unique
from tests.web.conftest import hidden_csrf, log_in
from tests.web.test_portal import entitlement_rows, text_of

HX = {"HX-Request": "true"}


def booking_rows(page: str) -> list[str]:
    section = re.search(r'<section id="bookings">(.*?)</section>', page, re.S)
    assert section, page
    return [text_of(row) for row in re.findall(r'<tr id="booking-[^"]+">(.*?)</tr>', section.group(1), re.S)]


def form_fields(page: str, action: str) -> dict[str, str]:
    """The hidden fields of the form posting to `action`."""
    form = re.search(rf'<form[^>]*action="(?:http://testserver)?{re.escape(action)}"[^>]*>(.*?)</form>', page, re.S)
    assert form, f"no form to {action}"
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form.group(1)))


async def bookings_of(ctx, contract_id) -> list[Booking]:  # type: ignore[no-untyped-def]
    async with ctx.db.read() as session:
        return list(await session.scalars(select(Booking).where(Booking.contract_id == contract_id).order_by(Booking.created_at)))


async def test_a_customer_books_an_activity_with_htmx(anonymous_client, logged_in, ctx, make_customer, make_contract):
    customer = await make_customer()
    contract = await make_contract(customer=customer)
    await logged_in(UserKind.CUSTOMER, customer_id=customer.id, name="Anna Customer")
    page = (await anonymous_client.get(f"/contracts/{contract.id}")).text
    assert "What can be booked (9 activities)" in text_of(page)
    assert (
        "Architecture review 4 small activities 4 activities of Small activities Evaluation of the overall solution design"
        in text_of(page)
    )
    assert "<summary>Schedule</summary>" not in page  # scheduling is the client manager's
    fields = form_fields(page, f"/contracts/{contract.id}/bookings")

    response = await anonymous_client.post(
        f"/contracts/{contract.id}/bookings",
        data={**fields, "activity": "architecture-review", "on": "2026-04-01", "note": "Before the replatforming"},
        headers=HX,
    )
    assert response.status_code == 200, response.text
    panel = response.text
    assert panel.strip().startswith('<div id="contract-panel">') and "<html" not in panel
    # The notice goes to the page's one status region, swapped out of band.
    assert re.search(r'<div class="flashes" id="flashes" role="status" hx-swap-oob="true">', panel)
    assert "Requested Architecture review for Apr 1, 2026: the client manager schedules it." in text_of(panel)
    assert booking_rows(panel) == [
        "Architecture review Before the replatforming 4 activities Feb 15, 2026 – May 14, 2026 wanted Apr 1, 2026 "
        "requested Cancel"
    ]
    assert entitlement_rows(panel)[0][2:5] == ["5 activities", "4 activities", "1 activity"]

    # The same form sent again (a double click) books once: it carries the same request key.
    again = await anonymous_client.post(
        f"/contracts/{contract.id}/bookings",
        data={**fields, "activity": "architecture-review", "on": "2026-04-01", "note": "Before the replatforming"},
        headers=HX,
    )
    assert again.status_code == 200
    assert len(await bookings_of(ctx, contract.id)) == 1

    # A booking past the quota is refused in place, with the reason; nothing is written.
    fresh = form_fields(panel, f"/contracts/{contract.id}/bookings")
    assert fresh["request_key"] != fields["request_key"]
    refused = await anonymous_client.post(
        f"/contracts/{contract.id}/bookings", data={**fresh, "activity": "code-review", "on": "2026-04-02"}, headers=HX
    )
    assert refused.status_code == 422
    assert "Code review takes 2 activities and only 1 activity remain" in text_of(refused.text)
    assert len(await bookings_of(ctx, contract.id)) == 1


async def test_forms_work_without_javascript(anonymous_client, logged_in, ctx, make_customer, make_contract):
    customer = await make_customer()
    contract = await make_contract(customer=customer)
    await logged_in(UserKind.CUSTOMER, customer_id=customer.id)
    page = (await anonymous_client.get(f"/contracts/{contract.id}")).text
    fields = form_fields(page, f"/contracts/{contract.id}/bookings")

    response = await anonymous_client.post(
        f"/contracts/{contract.id}/bookings", data={**fields, "activity": "advisory-call", "on": "2026-03-12"}
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"/contracts/{contract.id}"
    page = (await anonymous_client.get(response.headers["location"])).text
    [row] = booking_rows(page)
    assert row.startswith("Advisory call 1 activity")
    # The confirmation comes with the page after the redirect, once.
    assert "Requested Advisory call for Mar 12, 2026: the client manager schedules it." in text_of(page)
    again = (await anonymous_client.get(response.headers["location"])).text
    assert "Requested Advisory call" not in text_of(again)

    past = await anonymous_client.post(
        f"/contracts/{contract.id}/bookings",
        data={**form_fields(page, f"/contracts/{contract.id}/bookings"), "activity": "advisory-call", "on": "2026-03-01"},
    )
    assert past.status_code == 422
    assert past.text.lstrip().startswith("<!doctype html>")
    assert "2026-03-01 is in the past: book for 2026-03-10 or later" in text_of(past.text)

    [booking] = await bookings_of(ctx, contract.id)
    cancelled = await anonymous_client.post(
        f"/bookings/{booking.id}/cancel", data={"csrf_token": hidden_csrf(page), "reason": "not needed"}
    )
    assert cancelled.status_code == 303
    assert "Cancelled Advisory call: its units are available again." in text_of(
        (await anonymous_client.get(cancelled.headers["location"])).text
    )
    [booking] = await bookings_of(ctx, contract.id)
    assert (booking.status, booking.cancel_reason) == (BookingStatus.CANCELLED, "not needed")


async def test_a_form_without_its_csrf_token_is_refused(anonymous_client, logged_in, ctx, make_customer, make_contract):
    customer = await make_customer()
    contract = await make_contract(customer=customer)
    await logged_in(UserKind.CUSTOMER, customer_id=customer.id)
    response = await anonymous_client.post(
        f"/contracts/{contract.id}/bookings", data={"activity": "advisory-call", "on": "2026-04-01"}
    )
    assert response.status_code == 403
    assert await bookings_of(ctx, contract.id) == []


async def test_the_client_manager_schedules_and_marks_delivered(
    anonymous_client, logged_in, ctx, clock, make_contract
):
    manager = await logged_in(UserKind.STAFF, staff_role=StaffRole.CLIENT_MANAGER, name="Carl Manager")
    contract = await make_contract(program="premium-availability", plan="premium-16", client_manager_email=manager.email)
    booked = await bookings.book_activity(
        ctx, ADMIN, bookings.NewBooking(contract.id, "schema-review", datetime(2026, 3, 20).date())
    )
    page = (await anonymous_client.get(f"/contracts/{contract.id}")).text
    assert "Client manager Carl Manager" in text_of(page)
    assert "<summary>Schedule</summary>" in page
    csrf = hidden_csrf(page)

    # The form's time is the program's (Europe/Berlin, UTC+1 in March).
    response = await anonymous_client.post(
        f"/bookings/{booked.booking.id}/schedule", data={"csrf_token": csrf, "starts_at": "2026-03-20T09:30"}, headers=HX
    )
    assert response.status_code == 200, response.text
    [booking] = await bookings_of(ctx, contract.id)
    assert (booking.status, booking.starts_at, booking.ends_at) == (
        BookingStatus.SCHEDULED, datetime(2026, 3, 20, 8, 30, tzinfo=UTC), datetime(2026, 3, 20, 10, 30, tzinfo=UTC)
    )
    assert booking.staff_id == manager.id
    [row] = booking_rows(response.text)
    # Shown in the viewer's zone (UTC without the browser's), the zone named.
    assert "Mar 20, 2026, 8:30 AM UTC – 10:30 AM scheduled Carl Manager" in row

    outside = await anonymous_client.post(
        f"/bookings/{booking.id}/schedule", data={"csrf_token": csrf, "starts_at": "2026-04-02T09:30"}, headers=HX
    )
    assert outside.status_code == 422
    assert "is outside it" in text_of(outside.text)

    assert "Delivered</button>" not in outside.text  # not offered before it starts, and refused if sent
    early = await anonymous_client.post(f"/bookings/{booking.id}/deliver", data={"csrf_token": csrf}, headers=HX)
    assert early.status_code == 422
    assert "it is delivered once it has taken place" in text_of(early.text)
    clock.instant = datetime(2026, 3, 20, 11, 0, tzinfo=UTC)
    await log_in(anonymous_client, manager.email)  # ten days on: a new session
    page = (await anonymous_client.get(f"/contracts/{contract.id}")).text
    assert "Delivered</button>" in page
    csrf = hidden_csrf(page)
    delivered = await anonymous_client.post(f"/bookings/{booking.id}/deliver", data={"csrf_token": csrf}, headers=HX)
    assert delivered.status_code == 200
    assert "Schema review delivered." in text_of(delivered.text)
    [booking] = await bookings_of(ctx, contract.id)
    assert booking.status == BookingStatus.DELIVERED


async def test_a_partner_is_offered_itself_and_books_only_where_allowed(
    anonymous_client, logged_in, ctx, make_customer, make_contract
):
    customer = await make_customer()
    contract = await make_contract(customer=customer)
    partner = await parties.create_partner(ctx, ADMIN, parties.NewPartner(code=unique("partner"), name="Northwind"))
    await parties.link_partner(
        ctx, ADMIN, partner_id=partner.id, customer_id=customer.id, managed=True, production_access=False,
        can_book_activities=False,
    )
    await logged_in(UserKind.PARTNER, partner_id=partner.id)
    page = (await anonymous_client.get(f"/contracts/{contract.id}")).text
    # The link does not let it book: no booking form is offered, and a booking sent anyway is refused.
    assert f'action="/contracts/{contract.id}/bookings"' not in page
    refused = await anonymous_client.post(
        f"/contracts/{contract.id}/bookings",
        data={"csrf_token": hidden_csrf(page), "activity": "advisory-call", "on": "2026-04-01"}, headers=HX,
    )
    assert refused.status_code == 422
    assert "may not book activities for this customer: the customer has not allowed it" in text_of(refused.text)

    await parties.link_partner(
        ctx, ADMIN, partner_id=partner.id, customer_id=customer.id, managed=True, production_access=False,
        can_book_activities=True,
    )
    page = (await anonymous_client.get(f"/contracts/{contract.id}")).text
    assert re.search(rf'<input type="checkbox" name="partner" value="{partner.id}"> Northwind', page)
    booked = await anonymous_client.post(
        f"/contracts/{contract.id}/bookings",
        data={**form_fields(page, f"/contracts/{contract.id}/bookings"), "activity": "advisory-call", "on": "2026-04-01",
              "partner": str(partner.id)},
        headers=HX,
    )
    assert booked.status_code == 200, booked.text
    [row] = booking_rows(booked.text)
    assert "requested Northwind Cancel" in row


async def test_someone_elses_booking_is_not_found(anonymous_client, logged_in, ctx, make_customer, make_contract):
    contract = await make_contract()
    booked = await bookings.book_activity(ctx, ADMIN, bookings.NewBooking(contract.id, "advisory-call", datetime(2026, 4, 1).date()))
    await logged_in(UserKind.CUSTOMER, customer_id=(await make_customer()).id)
    home = (await anonymous_client.get("/")).text
    csrf = hidden_csrf(home)
    for action in ("cancel", "schedule", "deliver"):
        response = await anonymous_client.post(f"/bookings/{booked.booking.id}/{action}", data={"csrf_token": csrf})
        assert response.status_code == 404, action
        assert f"booking {booked.booking.id} does not exist" in response.text
    assert (await anonymous_client.post(f"/bookings/{uuid.uuid4()}/cancel", data={"csrf_token": csrf})).status_code == 404
    assert (await bookings_of(ctx, contract.id))[0].status == BookingStatus.REQUESTED


async def test_a_calendar_feed_is_shown_once_and_can_be_revoked(anonymous_client, logged_in, ctx, make_customer, make_contract):
    customer = await make_customer()
    contract = await make_contract(customer=customer)
    await logged_in(UserKind.CUSTOMER, customer_id=customer.id)
    page = (await anonymous_client.get(f"/contracts/{contract.id}")).text
    csrf = hidden_csrf(page)
    created = await anonymous_client.post(f"/contracts/{contract.id}/feeds", data={"csrf_token": csrf, "name": "Team"})
    # Post, redirect, get: a reload repeats nothing, and the address comes once, with the page after the redirect.
    assert created.status_code == 303
    shown = (await anonymous_client.get(created.headers["location"])).text
    address = re.search(r'<code class="secret">([^<]+)</code>', shown)
    assert address, shown
    # Without ENTITLE_PUBLIC_URL, under the address the request came in on.
    assert address.group(1).startswith("http://testserver/calendar/")
    path = address.group(1).removeprefix("http://testserver")
    assert (await anonymous_client.get(path)).status_code == 200
    shown_again = (await anonymous_client.get(f"/contracts/{contract.id}")).text
    assert address.group(1) not in shown_again
    assert "Team" in text_of(shown_again) and "active" in text_of(shown_again)
    feeds = await calendar_feeds.list_feeds(ctx, ADMIN, [contract.id])
    assert len(feeds[contract.id]) == 1

    feed_id = re.search(rf"/contracts/{contract.id}/feeds/([0-9a-f-]+)/revoke", shown_again).group(1)  # type: ignore[union-attr]
    revoked = await anonymous_client.post(
        f"/contracts/{contract.id}/feeds/{feed_id}/revoke", data={"csrf_token": csrf}, headers=HX
    )
    assert revoked.status_code == 200
    assert "Revoked the feed 'Team'." in text_of(revoked.text)
    assert (await anonymous_client.get(path)).status_code == 404


async def test_with_htmx_a_new_feed_is_shown_in_place(anonymous_client, logged_in, make_customer, make_contract):
    customer = await make_customer()
    contract = await make_contract(customer=customer)
    await logged_in(UserKind.CUSTOMER, customer_id=customer.id)
    csrf = hidden_csrf((await anonymous_client.get(f"/contracts/{contract.id}")).text)
    created = await anonymous_client.post(
        f"/contracts/{contract.id}/feeds", data={"csrf_token": csrf, "name": "Team"}, headers=HX
    )
    assert created.status_code == 200 and "<html" not in created.text
    assert re.search(r'<code class="secret">http://testserver/calendar/[A-Za-z0-9_-]+\.ics</code>', created.text)


async def test_a_read_only_session_is_never_offered_forms(anonymous_client, logged_in, make_contract):
    # A support engineer reads bookings but neither books, schedules nor manages feeds.
    await logged_in(UserKind.STAFF, staff_role=StaffRole.SUPPORT_ENGINEER)
    contract = await make_contract()
    page = (await anonymous_client.get(f"/contracts/{contract.id}")).text
    assert f'action="/contracts/{contract.id}/bookings"' not in page
    assert f'action="/contracts/{contract.id}/feeds"' not in page
    assert "What can be booked" in page
    assert CSRF_HEADER in page  # htmx still sends the session's token with its requests


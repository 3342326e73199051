"""The portal's pages by role (issue 12): homes, tickets (list, page, filing), queue, out of scope, reports,
GraphiQL; what each viewer is offered; foreign ids answered 404 with the navigation kept; CSRF; post,
redirect, get with a flash; security headers; formatting for the viewer."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from api.auth import SESSION_COOKIE
from api.models import Customer, Partner, Ticket, UserKind
from api.services import bookings, calendar_feeds, parties, tickets
from api.services.context import Actor
from api.services.tickets import NewTicket
from tests.conftest import ADMIN, unique
from tests.web.conftest import hidden_csrf
from tests.web.test_portal import text_of
from web.layout import Viewer

HX = {"HX-Request": "true"}
INCIDENT = {
    "type": "incident", "severity": "critical", "subject": "Checkout is down", "description": "Since 09:00",
    "affected_account": "acme-prod", "steps_followed": "Open the checkout", "expected_result": "It loads",
}


@dataclass
class World:
    customer: Customer
    contract: Any
    partner: Partner  # manages the customer
    other_partner: Partner  # works with it without managing it
    foreign: Customer
    foreign_contract: Any
    foreign_ticket: Ticket


@pytest.fixture
async def world(ctx, make_customer, make_contract) -> World:  # type: ignore[no-untyped-def]
    customer = await make_customer(name=unique("Acme"))
    contract = await make_contract(
        program="partner-support", plan="enterprise", customer=customer, custom_allowances={"support-hours": 600}
    )
    partner = await parties.create_partner(ctx, ADMIN, parties.NewPartner(code=unique("managing"), name="Northwind"))
    other = await parties.create_partner(ctx, ADMIN, parties.NewPartner(code=unique("helping"), name="Bluefin"))
    await parties.link_partner(
        ctx, ADMIN, partner_id=partner.id, customer_id=customer.id, managed=True, production_access=True,
        can_book_activities=True,
    )
    await parties.link_partner(
        ctx, ADMIN, partner_id=other.id, customer_id=customer.id, managed=False, production_access=False,
        can_book_activities=True,
    )
    foreign = await make_customer(name=unique("Globex"))
    foreign_contract = await make_contract(
        program="partner-support", plan="enterprise", customer=foreign, custom_allowances={"support-hours": 600}
    )
    foreign_ticket = await tickets.open_ticket(ctx, ADMIN, _incident(foreign.id, "Their outage"))
    return World(customer, contract, partner, other, foreign, foreign_contract, foreign_ticket)


def _incident(customer_id: uuid.UUID, subject: str) -> NewTicket:
    return NewTicket(
        customer_id=customer_id, ticket_type="incident", severity="critical", subject=subject,
        affected_account="prod", steps_followed="Open it", expected_result="It works",
    )


def nav_links(page: str) -> list[str]:
    nav = re.search(r'<nav aria-label="Main">(.*?)</nav>', page, re.S)
    assert nav, page
    return [text_of(link) for link in re.findall(r"<a [^>]*>(.*?)</a>", nav.group(1), re.S)]


def csrf_of(page: str) -> str:
    return hidden_csrf(page)


# ---- security headers and no inline script -------------------------------------------------------------


async def test_every_response_carries_the_security_headers(anonymous_client, logged_in, ctx, world):
    await logged_in(UserKind.CUSTOMER, customer_id=world.customer.id)
    _, secret = await calendar_feeds.create_feed(ctx, ADMIN, world.contract.id)
    responses = [
        await anonymous_client.get("/"),
        await anonymous_client.get("/static/portal.css"),
        await anonymous_client.get("/no/such/page"),
        await anonymous_client.post("/graphql", json={"query": "{ me { name } }"}),  # no CSRF header: refused
        await anonymous_client.get(f"/calendar/{secret}.ics"),
        await anonymous_client.get("/healthz"),
    ]
    for response in responses:
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "'unsafe-inline'" not in csp
        assert "'unsafe-eval'" not in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] in ("same-origin", "no-referrer")
    assert responses[4].headers["referrer-policy"] == "no-referrer"  # the feed's own, kept


async def test_pages_have_no_inline_script_or_style(anonymous_client, logged_in, world):
    await logged_in(UserKind.PARTNER, partner_id=world.partner.id)
    for path in ("/", "/tickets", "/tickets/new", "/out-of-scope", f"/contracts/{world.contract.id}", "/reports"):
        page = (await anonymous_client.get(path)).text
        assert not re.search(r"<script(?![^>]*\ssrc=)[^>]*>", page), path
        assert " style=" not in page and "<style" not in page, path
        assert " hx-on" not in page, path  # would need eval


# ---- navigation and who I am ---------------------------------------------------------------------------


async def test_each_role_gets_its_navigation(anonymous_client, logged_in, world):
    await logged_in(UserKind.CUSTOMER, customer_id=world.customer.id, name="Cora")
    assert nav_links((await anonymous_client.get("/")).text) == [
        "Home", "Tickets", "Activities", "Out of scope", "Reports", "API"
    ]
    await logged_in(UserKind.PARTNER, partner_id=world.partner.id, name="Nora")
    page = (await anonymous_client.get("/")).text
    assert nav_links(page) == ["Home", "Tickets", "File a ticket", "Out of scope", "Reports", "API"]
    await logged_in(UserKind.STAFF, name="Sam")
    page = (await anonymous_client.get("/queue")).text
    assert nav_links(page) == ["Queue", "Tickets", "Contracts", "Programs", "Reports", "API"]
    assert '<a href="/queue" aria-current="page">Queue</a>' in page


async def test_a_partner_sees_who_it_acts_for_and_switches(anonymous_client, logged_in, world):
    await logged_in(UserKind.PARTNER, partner_id=world.partner.id)
    page = (await anonymous_client.get("/")).text
    switcher = re.search(r'<form class="acting" method="post" action="/acting-for">(.*?)</form>', page, re.S)
    assert switcher and 'aria-label="Acting for"' in switcher.group(1)
    assert f"{world.customer.name} (managed)</option>" in switcher.group(1)
    assert "<button type=\"submit\">Switch</button>" in switcher.group(1)
    assert f"Acting for {world.customer.name}" in text_of(page)

    # A customer it does not work with is not switched to.
    refused = await anonymous_client.post(
        "/acting-for", data={"csrf_token": csrf_of(page), "customer": str(world.foreign.id), "next": "/"}
    )
    assert refused.status_code == 303
    after = (await anonymous_client.get("/")).text
    assert "That customer is not one you work with." in text_of(after)
    assert f"Acting for {world.customer.name}" in text_of(after)
    # Without its CSRF token the switch is refused.
    assert (await anonymous_client.post("/acting-for", data={"customer": str(world.customer.id)})).status_code == 403


# ---- homes ---------------------------------------------------------------------------------------------


async def test_customer_home_says_what_is_left(anonymous_client, logged_in, ctx, clock, world):
    from api.services import ledger

    await ledger.consume_entitlement(
        ctx, ADMIN, ledger.Consumption(world.contract.id, "support-hours", Decimal(90), reason="kick-off")
    )
    booked = await bookings.book_activity(ctx, ADMIN, bookings.NewBooking(
        (await _assure(ctx, world)).id, "advisory-call", date(2026, 3, 20)))
    filed = await tickets.open_ticket(ctx, ADMIN, _incident(world.customer.id, "Payments fail"))
    await logged_in(UserKind.CUSTOMER, customer_id=world.customer.id)
    page = (await anonymous_client.get("/")).text
    text = text_of(page)
    assert "<h1>What is left</h1>" in page
    assert re.search(r'<meter [^>]*value="510"[^>]*aria-label="Support hours remaining"', page, re.S)
    assert "8.5 of 10 hours left" in text
    assert "ends Feb 14, 2027 (341 days left)" in text  # the partner plan's year from 2026-02-15
    assert 'role="img" aria-label="Consumption, last 12 months"' in page
    chart_table = re.search(r'<table class="numbers">(.*?)</table>', page, re.S).group(1)  # type: ignore[union-attr]
    assert "Mar 2026 1 activity 1 h 30 min" in text_of(chart_table)
    assert "Open tickets" in text and f'href="/tickets/{filed.id}"' in page
    assert "Upcoming activities" in text and booked.booking.activity_name in text
    assert str(world.foreign_ticket.id) not in page


async def _assure(ctx, world):  # type: ignore[no-untyped-def]
    from api.services import contracts

    return await contracts.create_contract(ctx, ADMIN, contracts.NewContract(
        reference=unique("ASSURE"), customer_id=world.customer.id, program_code="advisory-assure", plan_code="small",
        effective_date=date(2026, 1, 1), end_date=date(2026, 12, 31), monthly_fee=Decimal("100.00"), currency="EUR",
    ))


async def test_expiring_soon_is_shown_on_the_home(anonymous_client, logged_in, ctx, world):
    # Assure Small from 2026-01-01: the first quarter ends 2026-03-31, 21 days after NOW, with units left.
    await _assure(ctx, world)
    await logged_in(UserKind.CUSTOMER, customer_id=world.customer.id)
    text = text_of((await anonymous_client.get("/")).text)
    assert "Small activities" in text and "5 of 5 activities left" in text
    assert "ends Mar 31, 2026 (21 days left) Expiring soon" in text


async def test_partner_home_lists_its_customers(anonymous_client, logged_in, ctx, clock, world):
    await tickets.open_ticket(ctx, ADMIN, _incident(world.customer.id, "Orders stuck"))
    clock.instant += timedelta(days=2)  # two business days later: the 2-hour first response is breached
    await logged_in(UserKind.PARTNER, partner_id=world.partner.id)
    page = (await anonymous_client.get("/")).text
    assert "<h1>Your customers</h1>" in page
    row = re.search(rf"<tr>\s*<th scope=\"row\"><a href=\"/acting-for\?customer={world.customer.id}&amp;next=/\">.*?</tr>", page, re.S)
    assert row, page
    cells = text_of(row.group(0))
    assert world.customer.name in cells and "managed" in cells
    assert "Enterprise, support hours: 10 of 10 hours left" in cells
    assert "1 breached" in cells
    assert world.foreign.name not in page


async def test_partner_home_goes_a_page_of_customers_at_a_time(  # type: ignore[no-untyped-def]
    anonymous_client, logged_in, ctx, world, make_customer, monkeypatch
):
    from api.services import dashboards

    for name in ("Aardvark Ltd", "Zebra Ltd"):
        other = await make_customer(name=name)
        await parties.link_partner(ctx, ADMIN, partner_id=world.partner.id, customer_id=other.id, managed=False,
                                   production_access=False)
    monkeypatch.setattr(dashboards, "PARTNER_PAGE", 1)
    await logged_in(UserKind.PARTNER, partner_id=world.partner.id)
    seen, url, pages = [], "/", 0
    while url:
        page = (await anonymous_client.get(url)).text
        rows = re.findall(r'<th scope="row"><a href="/acting-for\?customer=([0-9a-f-]+)&amp;next=/">', page)
        assert len(rows) == 1, page
        seen += rows
        pages += 1
        found = re.search(r'<a href="([^"]+)">Next page</a>', page)
        url = found.group(1).replace("&amp;", "&") if found else ""
        assert pages < 10
    partner = Actor(kind="partner", ref="user:pager", name="Pager", partner_id=world.partner.id)
    linked = await dashboards.customer_choices(ctx, partner)  # every customer it works with, once, by name
    assert seen == [str(c.customer.id) for c in linked] and len(seen) >= 3
    assert (await anonymous_client.get("/?after=garbage")).status_code == 400


async def test_staff_home_is_the_queue(anonymous_client, logged_in, world):
    await logged_in(UserKind.STAFF)
    assert (await anonymous_client.get("/")).headers["location"] == "/queue"


# ---- tickets -------------------------------------------------------------------------------------------


async def test_filing_form_offers_the_plan_and_the_scope(anonymous_client, logged_in, world):
    await logged_in(UserKind.PARTNER, partner_id=world.partner.id)
    page = (await anonymous_client.get("/tickets/new")).text
    assert "<h1>File a ticket</h1>" in page
    assert re.search(r'<label for="file-customer">Customer</label>', page)
    assert f'<option value="{world.customer.id}" selected>{world.customer.name}</option>' in page
    assert str(world.foreign.id) not in page
    assert ">Incident</option>" in page
    assert "Critical — first response 2 h</option>" in page
    for label in ("Type", "Severity", "Subject", "Description", "Affected account", "Steps followed", "Expected result"):
        assert f">{label}</label>" in page, label
    scope = re.search(r'<section class="scope-list" aria-label="Out of scope">(.*?)</section>', page, re.S)
    assert scope and "Partner Support Program" in scope.group(1) and "out of support" in scope.group(1)
    assert "Incident can be filed for" in text_of(page)  # the filing check, before submitting
    assert '<button type="submit" name="intent" value="file">File ticket</button>' in page


async def test_a_refused_filing_keeps_the_input_and_puts_the_error_beside_its_field(anonymous_client, logged_in, ctx, world):
    await logged_in(UserKind.PARTNER, partner_id=world.partner.id)
    page = (await anonymous_client.get("/tickets/new")).text
    data = {**INCIDENT, "customer": str(world.customer.id), "csrf_token": csrf_of(page), "steps_followed": ""}
    refused = await anonymous_client.post("/tickets/new", data=data)
    assert refused.status_code == 422
    html = refused.text
    assert re.search(
        r'<textarea id="file-steps-followed" name="steps_followed"[^>]* aria-invalid="true" aria-describedby="error-steps_followed">',
        html,
    )
    assert re.search(r'<p class="field-error" id="error-steps_followed">Give the steps followed', html)
    assert 'name="subject" maxlength="300" value="Checkout is down"' in html
    assert ">Since 09:00</textarea>" in html and 'value="acme-prod"' in html and ">It loads</textarea>" in html
    assert '<option value="critical" selected>' in html
    async with ctx.db.read() as session:
        from sqlalchemy import func, select

        assert await session.scalar(select(func.count()).select_from(Ticket).where(Ticket.customer_id == world.customer.id)) == 0

    # htmx: the same, as the filing area alone.
    partial = await anonymous_client.post("/tickets/new", data=data, headers=HX)
    assert partial.status_code == 422 and "<html" not in partial.text
    assert partial.text.strip().startswith('<div id="file-area"')


async def test_filing_redirects_to_the_ticket_with_a_flash(anonymous_client, logged_in, world):
    await logged_in(UserKind.PARTNER, partner_id=world.partner.id)
    page = (await anonymous_client.get("/tickets/new")).text
    data = {**INCIDENT, "customer": str(world.customer.id), "csrf_token": csrf_of(page)}
    filed = await anonymous_client.post("/tickets/new", data=data)
    assert filed.status_code == 303
    location = filed.headers["location"]
    assert re.fullmatch(r"/tickets/[0-9a-f-]{36}", location)
    shown = (await anonymous_client.get(location)).text
    assert re.search(r'<div class="flashes" id="flashes" role="status">\s*<p class="notice">Ticket filed</p>', shown)
    assert "<h1>Checkout is down</h1>" in shown
    assert "Ticket filed" not in (await anonymous_client.get(location)).text  # once
    # It is in the list.
    listed = (await anonymous_client.get("/tickets")).text
    assert f'<a href="{location}">Checkout is down</a>' in listed
    # htmx gets HX-Redirect rather than a 303 it would follow inside fetch.
    again = await anonymous_client.post("/tickets/new", data={**data, "subject": "Second"}, headers=HX)
    assert again.status_code == 200 and again.headers["HX-Redirect"].startswith("/tickets/")


async def test_reloading_the_filing_form_for_another_type_needs_no_javascript(anonymous_client, logged_in, world):
    await logged_in(UserKind.PARTNER, partner_id=world.partner.id)
    page = (await anonymous_client.get("/tickets/new")).text
    data = {"customer": str(world.customer.id), "type": "question", "subject": "Kept", "intent": "reload",
            "csrf_token": csrf_of(page)}
    reloaded = await anonymous_client.post("/tickets/new", data=data)
    assert reloaded.status_code == 200
    assert '<option value="question" selected>' in reloaded.text
    assert "Standard" in reloaded.text and 'value="Kept"' in reloaded.text
    assert "Affected account" not in reloaded.text  # a question needs no diagnosis


async def test_filing_needs_the_csrf_token(anonymous_client, logged_in, world):
    await logged_in(UserKind.PARTNER, partner_id=world.partner.id)
    response = await anonymous_client.post("/tickets/new", data={**INCIDENT, "customer": str(world.customer.id)})
    assert response.status_code == 403


async def test_ticket_list_filters_and_pages_in_place(anonymous_client, logged_in, ctx, world):
    for n in range(23):
        await tickets.open_ticket(ctx, ADMIN, _incident(world.customer.id, f"Ticket number {n:02d}"))
    await logged_in(UserKind.PARTNER, partner_id=world.partner.id)
    page = (await anonymous_client.get("/tickets")).text
    assert "<h1>Tickets</h1>" in page
    for label in ("Status", "Severity", "Customer", "Search"):
        assert f">{label}</label>" in page
    assert page.count('href="/tickets/') >= 20
    next_link = re.search(r'<a href="([^"]+)" hx-get="[^"]+" hx-target="#ticket-results"[^>]*>Next page</a>', page)
    assert next_link
    second = await anonymous_client.get(next_link.group(1).replace("&amp;", "&"), headers=HX)
    assert second.status_code == 200 and "<html" not in second.text
    assert second.text.strip().startswith('<section id="ticket-results"')
    first_page = set(re.findall(r">Ticket number (\d+)</a>", page))
    second_page = set(re.findall(r">Ticket number (\d+)</a>", second.text))
    assert len(first_page) == 20 and not first_page & second_page
    assert first_page | second_page == {f"{n:02d}" for n in range(23)}

    found = await anonymous_client.get("/tickets", params={"q": "number 07"}, headers=HX)
    assert re.findall(r">Ticket number (\d+)</a>", found.text) == ["07"]
    nothing = await anonymous_client.get("/tickets", params={"status": "closed"})
    assert "No ticket matches these filters." in text_of(nothing.text)
    assert "Their outage" not in page  # another customer's


async def test_a_customer_ticket_page_and_the_sla_poll(anonymous_client, logged_in, ctx, clock, world):
    filed = await tickets.open_ticket(ctx, ADMIN, _incident(world.customer.id, "Checkout is down"))
    await logged_in(UserKind.CUSTOMER, customer_id=world.customer.id)
    page = (await anonymous_client.get(f"/tickets/{filed.id}")).text
    assert "<h1>Checkout is down</h1>" in page
    assert f'hx-get="/tickets/{filed.id}/sla" hx-trigger="every 30s"' in page
    assert "First response: due Mar 10, 2026, 2:00 PM UTC, in 2 h" in text_of(page)
    assert '<label for="reply-body">Message</label>' in page and ">Send</button>" in page
    assert "Internal note" not in page and "Log time" not in page and "Change status" not in page
    clock.instant += timedelta(minutes=100)  # server time is the truth: 80 % of the target is gone
    poll = await anonymous_client.get(f"/tickets/{filed.id}/sla", headers=HX)
    assert poll.text.strip().startswith('<section id="sla"')
    assert "First response: at risk: due Mar 10, 2026, 2:00 PM UTC, in 20 min" in text_of(poll.text)


async def test_staff_answer_log_time_and_move_a_ticket(anonymous_client, logged_in, ctx, world):
    filed = await tickets.open_ticket(ctx, ADMIN, NewTicket(
        customer_id=world.customer.id, ticket_type="question", severity="standard", subject="How to export?"))
    await logged_in(UserKind.STAFF)
    page = (await anonymous_client.get(f"/tickets/{filed.id}")).text
    for needle in ("Internal note", ">Change status</button>", '<label for="time-minutes">Minutes</label>',
                   '<label for="time-note">Note</label>', ">Log time</button>"):
        assert needle in page, needle
    assert "Support hours: 10 h of 10 h left" in text_of(page)
    csrf = csrf_of(page)
    replied = await anonymous_client.post(f"/tickets/{filed.id}/comments", data={"csrf_token": csrf, "body": "Use the export button."})
    assert replied.status_code == 303
    page = (await anonymous_client.get(replied.headers["location"])).text
    assert "Reply sent." in text_of(page) and "Use the export button." in page
    assert "Support hours: 9 h 45 min of 10 h left" in text_of(page)  # the first reply's 15-minute minimum

    logged = await anonymous_client.post(f"/tickets/{filed.id}/time", data={"csrf_token": csrf, "minutes": "45", "note": "Wrote a guide"})
    assert logged.status_code == 303
    page = (await anonymous_client.get(logged.headers["location"])).text
    assert "Logged 45 min of work; 30 min deducted from the support hours." in text_of(page)
    assert "Support hours: 9 h 15 min of 10 h left" in text_of(page)

    refused = await anonymous_client.post(f"/tickets/{filed.id}/time", data={"csrf_token": csrf, "minutes": "ten", "note": "x"})
    assert refused.status_code == 422
    assert re.search(r'<p class="field-error" id="error-minutes">give the minutes worked as a whole number', refused.text)
    assert 'value="ten"' in refused.text

    moved = await anonymous_client.post(f"/tickets/{filed.id}/status", data={"csrf_token": csrf, "to": "resolved"})
    assert moved.status_code == 303
    assert "Status changed to resolved." in text_of((await anonymous_client.get(moved.headers["location"])).text)


async def test_another_customers_pages_are_not_found_and_keep_the_navigation(anonymous_client, logged_in, world):
    await logged_in(UserKind.PARTNER, partner_id=world.partner.id)
    csrf = csrf_of((await anonymous_client.get("/")).text)
    ticket, contract = world.foreign_ticket.id, world.foreign_contract.id
    for path in (f"/tickets/{ticket}", f"/tickets/{ticket}/sla", f"/contracts/{contract}", f"/tickets/{uuid.uuid4()}"):
        response = await anonymous_client.get(path)
        assert response.status_code == 404, path
        assert '<nav aria-label="Main">' in response.text, path  # the layout stays
    for path in (f"/tickets/{ticket}/comments", f"/tickets/{ticket}/status", f"/tickets/{ticket}/time"):
        response = await anonymous_client.post(path, data={"csrf_token": csrf, "body": "x", "to": "closed", "minutes": "5", "note": "x"})
        assert response.status_code == 404, path
    unknown = await anonymous_client.get("/no/such/page")
    assert unknown.status_code == 404 and nav_links(unknown.text)[0] == "Home"


# ---- the queue -----------------------------------------------------------------------------------------


async def test_the_queue_orders_by_the_nearest_due_instant(anonymous_client, logged_in, ctx, clock, world):
    old = await tickets.open_ticket(ctx, ADMIN, _incident(world.customer.id, "Old and breached"))
    clock.instant += timedelta(minutes=100)
    risky = await tickets.open_ticket(ctx, ADMIN, NewTicket(
        customer_id=world.customer.id, ticket_type="question", severity="standard", subject="Fresh question"))
    await logged_in(UserKind.STAFF)
    clock.instant += timedelta(minutes=30)
    # One customer's queue: the run's other tests leave open tickets of their own, due sooner or later.
    page = (await anonymous_client.get("/queue", params={"customer": str(world.customer.id)})).text
    assert "<h1>Queue</h1>" in page
    for label in ("Program", "Severity", "Customer", "Assignee"):
        assert f">{label}</label>" in page
    order = re.findall(r'<a href="/tickets/([0-9a-f-]+)">', page)
    assert order.index(str(old.id)) < order.index(str(risky.id))
    row = re.search(rf'<tr class="row-breached">\s*<td><span class="badge breached">breached</span>.*?/tickets/{old.id}', page, re.S)
    assert row, page
    only = await anonymous_client.get("/queue", params={"customer": str(world.foreign.id)}, headers=HX)
    assert only.text.strip().startswith('<section id="queue-rows"')
    assert str(old.id) not in only.text and str(world.foreign_ticket.id) in only.text


async def test_the_queue_goes_a_page_at_a_time(  # type: ignore[no-untyped-def]
    anonymous_client, logged_in, ctx, clock, world, make_customer, make_contract, monkeypatch
):
    from api.services import dashboards

    customer = await make_customer()
    await make_contract(customer=customer, program="partner-support", plan="enterprise",
                        custom_allowances={"support-hours": 600})
    filed = []
    for n in range(5):  # incidents due in turn, and questions without a running target after them
        new = _incident(customer.id, f"Queued {n}") if n % 2 else NewTicket(
            customer_id=customer.id, ticket_type="question", severity="standard", subject=f"Queued {n}")
        filed.append(await tickets.open_ticket(ctx, ADMIN, new))
        clock.instant += timedelta(minutes=7)
    monkeypatch.setattr(dashboards, "QUEUE_PAGE", 2)
    await logged_in(UserKind.STAFF)
    seen, url, pages = [], f"/queue?customer={customer.id}", 0
    while url:
        page = (await anonymous_client.get(url)).text
        found = re.findall(r'<a href="/tickets/([0-9a-f-]+)">', page)
        assert 1 <= len(found) <= 2, page
        seen += found
        pages += 1
        more = re.search(r'<a href="([^"]+)" hx-get="[^"]+" hx-target="#queue-rows" hx-swap="outerHTML" hx-push-url="true">Next page</a>', page)
        url = more.group(1).replace("&amp;", "&") if more else ""
    assert pages == 3 and sorted(seen) == sorted(str(t.id) for t in filed)  # each once
    assert (await anonymous_client.get("/queue?after=nonsense")).status_code == 400


async def test_the_queue_is_for_the_support_team(anonymous_client, logged_in, world):
    await logged_in(UserKind.CUSTOMER, customer_id=world.customer.id)
    assert (await anonymous_client.get("/queue")).status_code == 404


# ---- out of scope, activities, feeds -------------------------------------------------------------------


async def test_out_of_scope_lists_items_with_their_source(anonymous_client, logged_in, world):
    await logged_in(UserKind.CUSTOMER, customer_id=world.customer.id)
    page = (await anonymous_client.get("/out-of-scope")).text
    assert "<h1>Out of scope</h1>" in page
    text = text_of(page)
    assert "Out of support" in text and "Source: Partner Support Program (program)" in text


async def test_a_partner_that_does_not_manage_the_customer_is_not_offered_booking(anonymous_client, logged_in, ctx, world):
    contract = await _assure(ctx, world)
    customers_feed, _ = await calendar_feeds.create_feed(ctx, ADMIN, contract.id, "The customer's")
    user = await logged_in(UserKind.PARTNER, partner_id=world.other_partner.id)
    page = (await anonymous_client.get(f"/contracts/{contract.id}")).text
    assert f'action="/contracts/{contract.id}/bookings"' not in page
    assert "without managing it" in text_of(page)
    # It subscribes a feed of its own and may revoke that one, never the customer's.
    assert f"/feeds/{customers_feed.id}/revoke" not in page
    csrf = csrf_of(page)
    created = await anonymous_client.post(f"/contracts/{contract.id}/feeds", data={"csrf_token": csrf, "name": "Ours"})
    assert created.status_code == 303
    page = (await anonymous_client.get(f"/contracts/{contract.id}")).text
    feeds = (await calendar_feeds.list_feeds(ctx, ADMIN, [contract.id]))[contract.id]
    ours = next(f for f in feeds if f.name == "Ours")
    assert f"/feeds/{ours.id}/revoke" in page and f"/feeds/{customers_feed.id}/revoke" not in page
    refused = await anonymous_client.post(
        f"/contracts/{contract.id}/feeds/{customers_feed.id}/revoke", data={"csrf_token": csrf}
    )
    assert refused.status_code == 422
    assert "revokes only the feeds it created" in text_of(refused.text)
    assert user is not None


async def test_the_managing_partner_is_offered_booking(anonymous_client, logged_in, ctx, world):
    contract = await _assure(ctx, world)
    await logged_in(UserKind.PARTNER, partner_id=world.partner.id)
    page = (await anonymous_client.get(f"/contracts/{contract.id}")).text
    assert f'action="/contracts/{contract.id}/bookings"' in page
    for label in ('for="book-activity">Activity', 'for="book-on">Date'):
        assert label in page
    assert ">Book</button>" in page


async def test_a_refused_booking_keeps_the_input_beside_the_field(anonymous_client, logged_in, ctx, world):
    contract = await _assure(ctx, world)
    await logged_in(UserKind.CUSTOMER, customer_id=world.customer.id)
    page = (await anonymous_client.get(f"/contracts/{contract.id}")).text
    refused = await anonymous_client.post(
        f"/contracts/{contract.id}/bookings",
        data={"csrf_token": csrf_of(page), "activity": "advisory-call", "on": "2026-03-01", "note": "Keep me"},
    )
    assert refused.status_code == 422
    assert re.search(r'<input id="book-on" type="date" name="on" required value="2026-03-01"[^>]*aria-describedby="error-on"', refused.text)
    assert re.search(r'<p class="field-error" id="error-on">2026-03-01 is in the past', refused.text)
    assert 'value="Keep me"' in refused.text


async def test_feed_addresses_use_the_configured_public_url(ctx, settings, world):
    from dataclasses import replace

    _, secret = await calendar_feeds.create_feed(ctx, ADMIN, world.contract.id)
    assert calendar_feeds.feed_url(ctx, secret, "http://127.0.0.1:9000").startswith("http://127.0.0.1:9000/calendar/")
    assert calendar_feeds.feed_url(ctx, secret).startswith("http://127.0.0.1:8000/calendar/")  # the serve default
    ctx.settings = replace(settings, served_url="http://127.0.0.1:9100")
    assert calendar_feeds.feed_url(ctx, secret).startswith("http://127.0.0.1:9100/calendar/")
    ctx.settings = replace(settings, public_url="https://entitle.example")
    assert calendar_feeds.feed_url(ctx, secret, "http://127.0.0.1:9000") == f"https://entitle.example/calendar/{secret}.ics"


# ---- reports and the API -------------------------------------------------------------------------------


async def test_reports_page_shows_a_months_report_with_its_csv(anonymous_client, logged_in, world):
    await logged_in(UserKind.CUSTOMER, customer_id=world.customer.id)
    page = (await anonymous_client.get("/reports", params={"contract": str(world.contract.id), "month": "2026-03"}))
    assert page.status_code == 200
    assert "<h1>Reports</h1>" in page.text
    assert f'href="/reports/{world.contract.id}/2026-03.csv"' in page.text
    refused = await anonymous_client.get("/reports", params={"contract": str(world.contract.id), "month": "2027-01"})
    assert refused.status_code == 422
    assert re.search(r'<p class="field-error" id="error-month">month 2027-01 has not begun', refused.text)
    foreign = await anonymous_client.get("/reports", params={"contract": str(world.foreign_contract.id), "month": "2026-03"})
    assert foreign.status_code == 422 and "does not exist" in foreign.text and world.foreign.name not in foreign.text


async def test_graphiql_is_served_from_this_application(anonymous_client, logged_in, world):
    await logged_in(UserKind.CUSTOMER, customer_id=world.customer.id)
    page = await anonymous_client.get("/api")
    assert page.status_code == 200
    scripts = re.findall(r'<script src="([^"]+)"', page.text)
    assert all(src.startswith("http://testserver/static/") for src in scripts), scripts
    assert any("graphiql-3.8.3/graphiql.min.js" in s for s in scripts)
    for src in scripts:
        assert (await anonymous_client.get(src)).status_code == 200, src
    csrf = re.search(r'data-csrf="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    csp = page.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "style-src 'self' 'unsafe-inline'" in csp
    # What GraphiQL sends: the session cookie and the CSRF header.
    answer = await anonymous_client.post("/graphql", json={"query": "{ me { kind } }"}, headers={"X-CSRF-Token": csrf})
    assert answer.json() == {"data": {"me": {"kind": "customer"}}}
    ide = await anonymous_client.get("/graphql", headers={"Accept": "text/html"})
    assert ide.status_code == 303 and ide.headers["location"] == "/api"


async def test_in_production_there_is_no_api_link(settings, database, clock, make_user):
    from dataclasses import replace

    from api.app import create_app
    from tests.web.conftest import log_in

    user = await make_user()
    app = create_app(replace(settings, environment="production"), database=database, clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
        await log_in(http, user.email)
        page = (await http.get("/queue")).text
        assert "API" not in nav_links(page)
        assert (await http.get("/api")).status_code == 404


# ---- formatting ----------------------------------------------------------------------------------------


def test_viewer_formats_for_its_locale_and_zone():
    english, danish = Viewer("en", "UTC"), Viewer("da", "Europe/Copenhagen")
    assert english.money(Decimal("18500.00"), "DKK") == "DKK18,500.00"
    assert danish.money(Decimal("18500.00"), "DKK") == "18.500,00\xa0kr."
    assert english.day(date(2026, 12, 31)) == "Dec 31, 2026"
    instant = datetime(2026, 11, 30, 9, 5, tzinfo=UTC)
    assert english.instant(instant) == "Nov 30, 2026, 9:05\u202fAM UTC"
    assert danish.instant(instant) == "30. nov. 2026, 10.05 CET"
    assert english.quantity(750, "minutes") == "12 h 30 min" and english.amount(870, "minutes") == "14.5"
    assert english.quantity(1, "activities") == "1 activity"
    assert english.duration(3 * 86400 + 3600) == "3 d 1 h"


async def test_the_viewers_language_and_time_zone_come_from_the_browser(anonymous_client, logged_in, ctx, world):
    await logged_in(UserKind.CUSTOMER, customer_id=world.customer.id)
    anonymous_client.cookies.set("entitle_tz", "Europe/Copenhagen")
    page = (await anonymous_client.get("/contracts/" + str(world.contract.id), headers={"Accept-Language": "de-DE,de;q=0.9"})).text
    assert "1.000,00\xa0€" in page  # the monthly fee, German style
    assert '<html lang="de">' in page
    filed = await tickets.open_ticket(ctx, ADMIN, _incident(world.customer.id, "When?"))
    page = (await anonymous_client.get(f"/tickets/{filed.id}")).text
    assert "Filed Mar 10, 2026, 1:00 PM CET" in text_of(page)  # 12:00 UTC, in the browser's zone
    anonymous_client.cookies.set("entitle_tz", "Not/AZone")  # not a zone: UTC, named
    assert "Filed Mar 10, 2026, 12:00 PM UTC" in text_of((await anonymous_client.get(f"/tickets/{filed.id}")).text)


async def test_sign_out_is_a_post_with_csrf(anonymous_client, logged_in, world):
    await logged_in(UserKind.CUSTOMER, customer_id=world.customer.id)
    page = (await anonymous_client.get("/")).text
    assert re.search(r'<form class="logout" method="post" action="[^"]*/logout">\s*<input type="hidden" name="csrf_token"', page)
    assert ">Sign out</button>" in page
    assert SESSION_COOKIE in anonymous_client.cookies

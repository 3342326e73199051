"""Booking activities over GraphQL: up to the quarter's quota and not one past it, across the period
boundary of a contract that starts mid-month, cancelling and booking again, two racers for the last unit,
units expiring when a period ends, and the iCalendar feed."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest
from icalendar import Calendar
from sqlalchemy import func, select

from api.auth import CSRF_HEADER, SESSION_COOKIE
from api.db import Database
from api.models import Booking, LedgerEntry, StaffRole, UserKind
from api.services import identity
from api.services.context import AppContext
from tests.conftest import ADMIN, unique
from tests.graphql.helpers import PERIOD_FIELDS, entitlements

PERIOD = f"{PERIOD_FIELDS} expiringSoon expiryWarningDays"
BOOKING_FIELDS = """
    id contractId activity activityName bucket quantity ledgerUnit periodStart periodEnd requestedDate status note
    startsAt endsAt requestedBy staff { name email } partners { id } ledgerEntries { kind quantity bookingId }
"""
ERRORS = """
    ... on UserError { code message field }
    ... on InsufficientBalanceError { requested remaining }
    ... on BookingDateError { earliest latest }
    ... on ActivityNotInCatalogError { available }
"""
BOOK = f"""
mutation Book($input: BookActivityInput!) {{
  bookActivity(input: $input) {{
    __typename
    ... on BookingSuccess {{ replayed booking {{ {BOOKING_FIELDS} }} period {{ {PERIOD} }} }}
    {ERRORS}
  }}
}}
"""
SCHEDULE = f"""
mutation Schedule($input: ScheduleBookingInput!) {{
  scheduleBooking(input: $input) {{
    __typename
    ... on ScheduleBookingSuccess {{ booking {{ {BOOKING_FIELDS} }} }}
    ... on UserError {{ code message field }}
    ... on BookingDateError {{ earliest latest }}
  }}
}}
"""
CANCEL = f"""
mutation Cancel($input: CancelBookingInput!) {{
  cancelBooking(input: $input) {{
    __typename
    ... on BookingSuccess {{ booking {{ {BOOKING_FIELDS} cancelledAt cancelReason }} period {{ {PERIOD} }} }}
    ... on UserError {{ code message field }}
  }}
}}
"""
CURRENT = f"""
query Current($id: ID!) {{ contract(id: $id) {{ entitlements {{ {PERIOD} }} }} }}
"""
PERIODS = f"""
query Periods($id: ID!) {{ contract(id: $id) {{ periods(bucket: "activities") {{ {PERIOD} }} }} }}
"""


async def book(gql, contract_id: object, activity: str, on: str, **fields: Any) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    variables = {"contractId": str(contract_id), "activity": activity, "on": on, **fields}
    return (await gql(BOOK, {"input": variables}))["bookActivity"]


async def schedule(gql, booking_id: str, starts_at: str, **fields: Any) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return (await gql(SCHEDULE, {"input": {"bookingId": booking_id, "startsAt": starts_at, **fields}}))["scheduleBooking"]


async def cancel(gql, booking_id: str, reason: str = "") -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return (await gql(CANCEL, {"input": {"bookingId": booking_id, "reason": reason}}))["cancelBooking"]


async def written(ctx: AppContext, contract_id: object) -> tuple[int, int, int]:
    """Bookings, ledger entries and the ledger's sum for a contract."""
    async with ctx.db.read() as session:
        bookings = await session.scalar(select(func.count()).select_from(Booking).where(Booking.contract_id == contract_id))
        entries, total = (
            await session.execute(
                select(func.count(), func.coalesce(func.sum(LedgerEntry.quantity), 0)).where(
                    LedgerEntry.contract_id == contract_id
                )
            )
        ).one()
    return int(bookings or 0), int(entries), int(total)


@pytest.fixture
async def manager(ctx):  # type: ignore[no-untyped-def]
    email = f"{unique('manager')}@bookings.example"
    return await identity.create_user(
        ctx, ADMIN, identity.NewUser(email, "Carla Client-Manager", "manager password long", UserKind.STAFF,
                                     staff_role=StaffRole.CLIENT_MANAGER),
    )


async def test_book_up_to_the_quota_and_not_one_past_it(ctx, gql, make_contract):
    contract = await make_contract()  # Assure Small: 5 small activities a quarter from 2026-02-15

    first = await book(gql, contract.id, "architecture-review", "2026-04-01", note="Review before the replatforming")
    assert first["__typename"] == "BookingSuccess", first
    assert first["booking"]["status"] == "REQUESTED"
    assert (first["booking"]["quantity"], first["booking"]["bucket"], first["booking"]["ledgerUnit"]) == (
        4, "activities", "ACTIVITIES"
    )
    assert (first["booking"]["periodStart"], first["booking"]["periodEnd"]) == ("2026-02-15", "2026-05-14")
    assert first["booking"]["ledgerEntries"] == [{"kind": "CONSUME", "quantity": 4, "bookingId": first["booking"]["id"]}]
    assert (first["period"]["consumed"], first["period"]["remaining"]) == (4, 1)

    before = await written(ctx, contract.id)
    refused = await book(gql, contract.id, "code-review", "2026-04-02")
    assert refused["__typename"] == "InsufficientBalanceError", refused
    assert (refused["code"], refused["requested"], refused["remaining"], refused["field"]) == (
        "INSUFFICIENT_BALANCE", 2, 1, "activity"
    )
    assert "Code review takes 2 activities and only 1 activity remain" in refused["message"]
    assert await written(ctx, contract.id) == before  # nothing written: no booking, no ledger entry

    last = await book(gql, contract.id, "advisory-call", "2026-05-14")
    assert last["__typename"] == "BookingSuccess"
    assert (last["period"]["consumed"], last["period"]["remaining"]) == (5, 0)
    one_more = await book(gql, contract.id, "advisory-call", "2026-03-20")
    assert (one_more["__typename"], one_more["requested"], one_more["remaining"]) == ("InsufficientBalanceError", 1, 0)
    assert await written(ctx, contract.id) == (2, 2, 5)
    [current] = await entitlements(gql, contract.id, "2026-04-01")
    assert (current["consumed"], current["remaining"]) == (5, 0)


async def test_refusals_name_what_is_wrong_and_write_nothing(ctx, gql, make_contract):
    contract = await make_contract(catalog=["advisory-call", "code-review"])  # the order lists two activities

    outside = await book(gql, contract.id, "roadmap-workshop", "2026-04-01")
    assert outside["__typename"] == "ActivityNotInCatalogError"
    assert (outside["code"], outside["field"], outside["available"]) == (
        "ACTIVITY_NOT_IN_CATALOG", "activity", ["advisory-call", "code-review"]
    )
    past = await book(gql, contract.id, "advisory-call", "2026-03-09")  # NOW is 2026-03-10
    assert (past["__typename"], past["code"], past["field"]) == ("BookingDateError", "DATE_IN_PAST", "on")
    assert (past["earliest"], past["latest"]) == ("2026-03-10", "2027-02-14")
    late = await book(gql, contract.id, "advisory-call", "2027-02-15")
    assert (late["__typename"], late["code"]) == ("BookingDateError", "AFTER_CONTRACT_END")
    assert "after contract" in late["message"] and "2027-02-14" in late["message"]
    unknown = await book(gql, "8f9a1f0e-0000-4000-8000-000000000000", "advisory-call", "2026-04-01")
    assert (unknown["__typename"], unknown["code"]) == ("NotFoundError", "NOT_FOUND")
    assert await written(ctx, contract.id) == (0, 0, 0)

    future = await make_contract(effective=date(2026, 6, 1))
    early = await book(gql, future.id, "advisory-call", "2026-05-31")
    assert (early["__typename"], early["code"], early["earliest"]) == ("BookingDateError", "BEFORE_CONTRACT_START", "2026-06-01")
    ahead = await book(gql, future.id, "advisory-call", "2026-06-01")  # booking ahead into the first quarter
    assert ahead["__typename"] == "BookingSuccess"
    assert ahead["booking"]["periodStart"] == "2026-06-01"


async def test_booking_across_the_boundary_of_a_mid_month_contract(ctx, gql, make_contract, manager):
    contract = await make_contract(effective=date(2026, 2, 15), client_manager_email=manager.email)

    last_day = await book(gql, contract.id, "roadmap-workshop", "2026-05-14")  # 5: the whole first quarter
    assert (last_day["booking"]["periodStart"], last_day["booking"]["periodEnd"]) == ("2026-02-15", "2026-05-14")
    assert last_day["period"]["remaining"] == 0
    next_day = await book(gql, contract.id, "code-review", "2026-05-15")
    assert next_day["__typename"] == "BookingSuccess", next_day
    assert (next_day["booking"]["periodStart"], next_day["booking"]["periodEnd"]) == ("2026-05-15", "2026-08-14")
    assert (next_day["period"]["consumed"], next_day["period"]["remaining"]) == (2, 3)
    [q1] = await entitlements(gql, contract.id, "2026-05-14")
    [q2] = await entitlements(gql, contract.id, "2026-05-15")
    assert (q1["consumed"], q2["consumed"]) == (5, 2)

    # Scheduling stays inside the period charged: the first quarter's workshop cannot move to 15 May.
    workshop = last_day["booking"]["id"]
    moved = await schedule(gql, workshop, "2026-05-15T09:00:00+00:00")
    assert (moved["__typename"], moved["code"], moved["field"]) == ("BookingDateError", "OUTSIDE_PERIOD", "startsAt")
    assert (moved["earliest"], moved["latest"]) == ("2026-03-10", "2026-05-14")
    assert "2026-02-15 to 2026-05-14" in moved["message"]
    done = await schedule(gql, workshop, "2026-05-14T09:00:00+00:00")
    assert done["__typename"] == "ScheduleBookingSuccess", done
    booking = done["booking"]
    assert booking["status"] == "SCHEDULED"
    assert (booking["startsAt"], booking["endsAt"]) == ("2026-05-14T09:00:00+00:00", "2026-05-14T10:00:00+00:00")
    assert booking["staff"] == {"name": "Carla Client-Manager", "email": manager.email}
    in_the_past = await schedule(gql, workshop, "2026-03-10T11:59:00+00:00")
    assert (in_the_past["__typename"], in_the_past["code"]) == ("BookingDateError", "DATE_IN_PAST")


async def test_cancel_gives_the_units_back_and_they_can_be_booked_again(ctx, gql, make_contract):
    contract = await make_contract()
    review = await book(gql, contract.id, "architecture-review", "2026-04-01")
    await book(gql, contract.id, "advisory-call", "2026-04-02")
    full = await book(gql, contract.id, "advisory-call", "2026-04-03")
    assert full["__typename"] == "InsufficientBalanceError"

    cancelled = await cancel(gql, review["booking"]["id"], "the release moved")
    assert cancelled["__typename"] == "BookingSuccess", cancelled
    assert cancelled["booking"]["status"] == "CANCELLED"
    assert cancelled["booking"]["cancelReason"] == "the release moved"
    assert (cancelled["period"]["consumed"], cancelled["period"]["remaining"]) == (1, 4)
    assert [(e["kind"], e["quantity"]) for e in cancelled["booking"]["ledgerEntries"]] == [("CONSUME", 4), ("REVERSE", -4)]

    again = await book(gql, contract.id, "go-live-readiness", "2026-04-03")
    assert again["__typename"] == "BookingSuccess", again
    assert again["period"]["remaining"] == 0
    twice = await cancel(gql, review["booking"]["id"])
    assert (twice["__typename"], twice["code"]) == ("ConflictError", "WRONG_STATUS")
    assert await written(ctx, contract.id) == (3, 4, 5)


async def test_a_repeated_idempotency_key_returns_the_first_booking(ctx, gql, make_contract):
    contract = await make_contract()
    first = await book(gql, contract.id, "code-review", "2026-04-01", idempotencyKey="book-77")
    again = await book(gql, contract.id, "code-review", "2026-04-01", idempotencyKey="book-77")
    assert (first["replayed"], again["replayed"]) == (False, True)
    assert again["booking"]["id"] == first["booking"]["id"]
    other = await book(gql, contract.id, "security-review", "2026-04-01", idempotencyKey="book-77")
    assert (other["__typename"], other["code"], other["field"]) == ("ConflictError", "IDEMPOTENCY_CONFLICT", "idempotencyKey")
    assert await written(ctx, contract.id) == (1, 1, 2)


def _client(app: Any, headers: dict[str, str]) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver", headers=headers)


async def test_two_racers_for_the_last_unit_one_wins(ctx, settings, clock, database_url, admin_login, make_contract):
    """Two apps, each with its own engine and connections, book the last unit at once: exactly one booking is
    made, the other is refused with nothing written (SQLite and PostgreSQL alike)."""
    from api.app import create_app

    contract = await make_contract()
    other = Database(database_url)
    apps = [create_app(settings, database=ctx.db, clock=clock), create_app(settings, database=other, clock=clock)]
    headers = {"Cookie": f"{SESSION_COOKIE}={admin_login.session_secret}", CSRF_HEADER: admin_login.csrf_token}
    clients = [_client(app, headers) for app in apps]
    try:
        async def run(http: httpx.AsyncClient, activity: str) -> dict[str, Any]:
            variables = {"input": {"contractId": str(contract.id), "activity": activity, "on": "2026-04-01"}}
            response = await http.post("/graphql", json={"query": BOOK, "variables": variables})
            assert response.status_code == 200, response.text
            return response.json()["data"]["bookActivity"]

        assert (await run(clients[0], "architecture-review"))["__typename"] == "BookingSuccess"  # 4 of 5
        pair = await asyncio.gather(run(clients[0], "advisory-call"), run(clients[1], "advisory-call"))
        assert sorted(result["__typename"] for result in pair) == ["BookingSuccess", "InsufficientBalanceError"], pair
        [lost] = [result for result in pair if result["__typename"] != "BookingSuccess"]
        assert (lost["requested"], lost["remaining"]) == (1, 0)
        assert await written(ctx, contract.id) == (2, 2, 5)
        [period] = (await clients[1].post(
            "/graphql", json={"query": PERIODS, "variables": {"id": str(contract.id)}}
        )).json()["data"]["contract"]["periods"][:1]
        assert (period["consumed"], period["remaining"]) == (5, 0)
    finally:
        for http in clients:
            await http.aclose()
        await other.dispose()


async def test_units_left_at_the_end_of_a_period_expire(ctx, clock, connect, make_contract):
    caller, _, _ = await connect.token()  # a token outlives the admin's 12-hour session as the clock moves on
    gql = caller.data
    contract = await make_contract(plan="medium")  # 10 a quarter
    await book(gql, contract.id, "code-review", "2026-04-01")
    await book(gql, contract.id, "upgrade-planning", "2026-05-14")

    clock.instant = datetime(2026, 4, 20, 9, 0, tzinfo=UTC)
    [soon] = (await gql(CURRENT, {"id": str(contract.id)}))["contract"]["entitlements"]
    assert (soon["remaining"], soon["expiresInDays"], soon["ended"], soon["expired"]) == (5, 24, False, 0)
    assert soon["expiringSoon"] is True and soon["expiryWarningDays"] == 30

    clock.instant = datetime(2026, 5, 15, 0, 30, tzinfo=UTC)  # the first quarter ended last night
    periods = (await gql(PERIODS, {"id": str(contract.id)}))["contract"]["periods"]
    q1, q2 = periods[0], periods[1]
    assert (q1["periodEnd"], q1["consumed"], q1["remaining"], q1["ended"], q1["expired"]) == ("2026-05-14", 5, 5, True, 5)
    assert q1["expiringSoon"] is False
    assert (q2["periodStart"], q2["consumed"], q2["remaining"], q2["expired"]) == ("2026-05-15", 0, 10, 0)
    # Nothing carries over, and nothing can be booked into the ended quarter any more.
    late = await book(gql, contract.id, "advisory-call", "2026-05-14")
    assert (late["__typename"], late["code"]) == ("BookingDateError", "DATE_IN_PAST")


async def test_the_calendar_feed_holds_the_scheduled_activities_and_period_ends(ctx, client, gql, make_contract, manager):
    contract = await make_contract(client_manager_email=manager.email)
    scheduled = await book(gql, contract.id, "security-review", "2026-04-01", note="Before the audit")
    await schedule(gql, scheduled["booking"]["id"], "2026-04-01T13:30:00+02:00", durationMinutes=120)
    await book(gql, contract.id, "advisory-call", "2026-04-02")  # requested, not scheduled: not in the feed
    called_off = await book(gql, contract.id, "advisory-call", "2026-04-03")
    await schedule(gql, called_off["booking"]["id"], "2026-04-03T08:00:00+00:00")
    await cancel(gql, called_off["booking"]["id"], "no longer needed")

    created = (await gql(
        """mutation Feed($input: CreateCalendarFeedInput!) { createCalendarFeed(input: $input) {
             __typename ... on CreateCalendarFeedSuccess { url feed { id name active } } ... on UserError { code message } } }""",
        {"input": {"contractId": str(contract.id), "name": "Team calendar"}},
    ))["createCalendarFeed"]
    assert created["__typename"] == "CreateCalendarFeedSuccess", created
    assert created["feed"]["active"] is True
    url = created["url"]
    base = str(client.base_url).rstrip("/")  # ENTITLE_PUBLIC_URL unset: the address the request came in on
    assert url.startswith(f"{base}/calendar/") and url.endswith(".ics")
    path = url.removeprefix(base)

    anonymous = _client(client._transport.app, {})  # type: ignore[attr-defined]
    try:
        response = await anonymous.get(path)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "text/calendar; charset=utf-8"
        calendar = Calendar.from_ical(response.content)
        events = {str(event["UID"]): event for event in calendar.walk("VEVENT")}
        review = events[f"booking-{scheduled['booking']['id']}@entitle"]
        assert review.start == datetime(2026, 4, 1, 11, 30, tzinfo=UTC)
        assert review.end == datetime(2026, 4, 1, 13, 30, tzinfo=UTC)
        assert str(review["SUMMARY"]) == f"Security review ({contract.reference})"
        assert str(review["STATUS"]) == "CONFIRMED"
        assert "Carla Client-Manager" in str(review["DESCRIPTION"]) and "Before the audit" in str(review["DESCRIPTION"])
        gone = events[f"booking-{called_off['booking']['id']}@entitle"]
        assert str(gone["STATUS"]) == "CANCELLED" and int(gone["SEQUENCE"]) == 2
        period_ends = sorted(e.start for e in events.values() if str(e["UID"]).startswith("period-"))
        assert period_ends == [date(2026, 5, 14), date(2026, 8, 14), date(2026, 11, 14), date(2027, 2, 14)]
        assert len(events) == 2 + 4
        first_quarter = events[f"period-{contract.id}-activities-2026-02-15@entitle"]
        assert "1 activity of 5 activities unused" in str(first_quarter["DESCRIPTION"])

        revoked = (await gql(
            """mutation Revoke($id: ID!) { revokeCalendarFeed(id: $id) {
                 __typename ... on RevokeCalendarFeedSuccess { feed { active revokedAt } } } }""",
            {"id": created["feed"]["id"]},
        ))["revokeCalendarFeed"]
        assert revoked["feed"]["active"] is False
        assert (await anonymous.get(path)).status_code == 404
        assert (await anonymous.get("/calendar/" + "x" * 43 + ".ics")).status_code == 404
    finally:
        await anonymous.aclose()


async def test_activity_catalog_of_a_program_a_plan_and_a_contract(gql, make_contract):
    whole = (await gql('{ activityCatalog(programCode: "premium-availability") { code unit size bucket cost } }'))
    assert len(whole["activityCatalog"]) == 12
    assert whole["activityCatalog"][0] == {"code": "project-review", "unit": "HOURS", "size": "4", "bucket": None, "cost": None}
    plan = await gql(
        '{ activityCatalog(programCode: "premium-availability", planCode: "premium-32") { code bucket ledgerUnit cost } }'
    )
    assert plan["activityCatalog"][0] == {"code": "project-review", "bucket": "expert-hours", "ledgerUnit": "MINUTES", "cost": 240}
    assert (await gql('{ activityCatalog(programCode: "nope") { code } }'))["activityCatalog"] is None
    assert (await gql('{ activityCatalog(programCode: "advisory-assure", planCode: "nope") { code } }'))["activityCatalog"] is None
    none = await gql('{ activityCatalog(programCode: "tiered-support", planCode: "premium") { code } }')
    assert none["activityCatalog"] == []

    contract = await make_contract(catalog=["roadmap-workshop", "advisory-call"])
    data = await gql(
        "query C($id: ID!) { contract(id: $id) { orderCatalog activityCatalog { code name cost deliverables } } }",
        {"id": str(contract.id)},
    )
    assert data["contract"]["orderCatalog"] == ["roadmap-workshop", "advisory-call"]
    assert [(a["code"], a["cost"]) for a in data["contract"]["activityCatalog"]] == [("roadmap-workshop", 5), ("advisory-call", 1)]


async def test_expert_hours_are_booked_the_same_way_in_hours(ctx, gql, make_contract):
    # Premium 16: 16 expert hours per calendar quarter, counted in minutes.
    contract = await make_contract(program="premium-availability", plan="premium-16", effective=date(2026, 1, 1))
    booked = [
        await book(gql, contract.id, activity, "2026-03-20")
        for activity in ("project-review", "component-workshop", "launch-planning", "implementation-plan-evaluation")
    ]
    assert [(b["booking"]["quantity"], b["booking"]["ledgerUnit"]) for b in booked] == [
        (240, "MINUTES"), (240, "MINUTES"), (180, "MINUTES"), (180, "MINUTES")
    ]
    assert booked[-1]["period"] == booked[-1]["period"] | {"periodStart": "2026-01-01", "periodEnd": "2026-03-31",
                                                           "consumed": 840, "remaining": 120, "ledgerUnit": "MINUTES"}
    refused = await book(gql, contract.id, "performance-review", "2026-03-31")
    assert (refused["__typename"], refused["requested"], refused["remaining"]) == ("InsufficientBalanceError", 180, 120)
    assert "3 h and only 2 h remain" in refused["message"]
    scheduled = await schedule(gql, booked[0]["booking"]["id"], "2026-03-20T09:00:00+01:00")
    assert scheduled["booking"]["endsAt"] == "2026-03-20T12:00:00+00:00"  # four hours, the activity's size
    april = await book(gql, contract.id, "performance-review", "2026-04-01")  # calendar quarters: Q2 begins
    assert (april["booking"]["periodStart"], april["period"]["remaining"]) == ("2026-04-01", 780)


BOOKINGS = f"""
query Bookings($customer: ID!, $first: Int!) {{
  bookings(filter: {{customerId: $customer}}, first: $first) {{
    edges {{ cursor node {{ {BOOKING_FIELDS} customer {{ name }} contract {{ reference }} }} }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}
"""


async def test_listing_bookings_costs_the_same_statements_for_any_page(ctx, connect, make_customer, make_contract, manager):
    from sqlalchemy import event

    from api.models import TokenAccess, TokenScope
    from api.services import bookings, parties

    customer = await make_customer()
    partner = await parties.create_partner(ctx, ADMIN, parties.NewPartner(code=unique("p"), name="Partner"))
    await parties.link_partner(ctx, ADMIN, partner_id=partner.id, customer_id=customer.id, managed=False,
                               production_access=False, can_book_activities=True)
    for n in range(4):  # four contracts, ten bookings each, every other one scheduled, some with a partner
        contract = await make_contract(customer=customer, plan="custom", custom_allowances={"activities": 100},
                                       client_manager_email=manager.email)
        for m in range(10):
            booked = await bookings.book_activity(ctx, ADMIN, bookings.NewBooking(
                contract.id, "advisory-call", date(2026, 4, 1), partner_ids=[partner.id] if m % 3 == 0 else []
            ))
            if m % 2:
                await bookings.schedule_booking(ctx, ADMIN, bookings.Schedule(booked.booking.id, datetime(2026, 4, 1, 9, tzinfo=UTC)))
    caller, _, _ = await connect.token(TokenScope.PROVIDER, TokenAccess.READ)
    await caller.data("{ me { kind } }")  # the token's first use records last_used_at: keep it out of the count
    # Open the pool's connections first: a new connection's set-up statements are not the request's cost.
    await caller.data(BOOKINGS, {"customer": str(customer.id), "first": 40})

    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        statements.append(statement)

    engine = ctx.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        small = await caller.data(BOOKINGS, {"customer": str(customer.id), "first": 5})
        small_count = len(statements)
        statements.clear()
        large = await caller.data(BOOKINGS, {"customer": str(customer.id), "first": 40})
        large_count = len(statements)
    finally:
        event.remove(engine, "before_cursor_execute", count)

    assert len(small["bookings"]["edges"]) == 5 and small["bookings"]["pageInfo"]["hasNextPage"]
    nodes = [edge["node"] for edge in large["bookings"]["edges"]]
    assert len(nodes) == 40 and not large["bookings"]["pageInfo"]["hasNextPage"]
    assert sum(1 for node in nodes if node["partners"]) == 16 and sum(1 for node in nodes if node["staff"]) == 20
    assert all(node["ledgerEntries"] and node["customer"] and node["contract"] for node in nodes)
    # Measured, for 5 bookings as for 40: 9 statements on PostgreSQL (token check, bookings, customers,
    # contracts, plans, staff, and the partners and ledger entries of the visible bookings in three), 10 on
    # SQLite, which adds the BEGIN of the request's one read transaction.
    # Sibling fields resolve concurrently, so one loader's keys now and then arrive in two batches instead of
    # one: a page may cost one statement more, never one per booking (40 bookings would add dozens).
    assert abs(small_count - large_count) <= 1, (small_count, large_count)
    assert max(small_count, large_count) <= 11, (small_count, large_count)

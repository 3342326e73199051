"""GraphQL: `ticket(id)` with its events and SLA clocks as the clock moves (Madrid business hours,
pauses, at-risk share, 24/7 progress updates), who may read a ticket, and `calendarWindows` with its
time-zone offsets, DST changes and refusals."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from api.models import TokenAccess, TokenScope
from api.services import parties, tickets
from api.services.context import Actor
from api.services.tickets import NewTicket
from tests.conftest import ADMIN, NOW, unique
from tests.graphql.conftest import Connect

MADRID = ZoneInfo("Europe/Madrid")
ENGINEER = Actor(kind="staff", ref="user:engineer", name="Sam Support", roles=frozenset({"support_engineer"}))
FRIDAY_1730 = datetime(2026, 3, 6, 17, 30, tzinfo=MADRID)

SLA_FIELDS = "target calendar targetSeconds dueAt metAt breached paused elapsedSeconds remainingSeconds atRisk missedUpdates"
TICKET = f"""
query($id: ID!) {{
  ticket(id: $id) {{
    id customerId contractId ticketType severity status subject filedByKind viaPartnerId createdAt
    events {{ kind at actorKind severity automatic nextUpdateAt }}
    sla {{ {SLA_FIELDS} }}
  }}
}}
"""
WINDOWS = """
query($p: String!, $c: String!, $from: Date!, $to: Date!) {
  calendarWindows(programCode: $p, calendar: $c, fromDate: $from, toDate: $to) { start end }
}
"""


def madrid(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, second, tzinfo=MADRID)


def instant(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


async def support_customer(ctx, make_customer, make_contract, program: str = "partner-support", plan: str = "enterprise"):  # type: ignore[no-untyped-def]
    customer = await make_customer()
    allowances = {"support-hours": 600} if program == "partner-support" else {}
    contract = await make_contract(program=program, plan=plan, customer=customer, custom_allowances=allowances)
    return customer, contract


async def file(ctx, clock, customer, at: datetime, ticket_type: str = "incident", severity: str = "major"):  # type: ignore[no-untyped-def]
    clock.instant = at
    return await tickets.open_ticket(
        ctx, ADMIN,
        NewTicket(
            customer.id, ticket_type, severity, "Catalogue sync fails", affected_account="acme-prod",
            steps_followed="Ran the nightly sync", expected_result="Every product synced",
        ),
    )


async def event(ctx, clock, ticket, at: datetime, kind: str, **fields: Any) -> None:  # type: ignore[no-untyped-def]
    clock.instant = at
    await tickets.record_event(ctx, ENGINEER, ticket.id, kind, **fields)


async def sla_at(gql, clock, ticket, at: datetime) -> dict[str, dict[str, Any]]:  # type: ignore[no-untyped-def]
    clock.instant = at
    data = await gql(TICKET, {"id": str(ticket.id)})
    return {c["target"]: c for c in data["ticket"]["sla"]}


# ---- ticket(id) ----------------------------------------------------------------------------------


async def test_a_ticket_with_its_events(gql, ctx, clock, make_customer, make_contract):
    customer, contract = await support_customer(ctx, make_customer, make_contract)
    ticket = await file(ctx, clock, customer, FRIDAY_1730)
    await event(ctx, clock, ticket, madrid(9, 8, 5), "acknowledged", automatic=True)
    data = (await gql(TICKET, {"id": str(ticket.id)}))["ticket"]
    assert {k: data[k] for k in ("id", "customerId", "contractId", "ticketType", "severity", "status", "subject")} == {
        "id": str(ticket.id), "customerId": str(customer.id), "contractId": str(contract.id), "ticketType": "incident",
        "severity": "major", "status": "acknowledged", "subject": "Catalogue sync fails",
    }
    assert (data["filedByKind"], data["viaPartnerId"], instant(data["createdAt"])) == ("system", None, FRIDAY_1730)
    assert [(e["kind"], instant(e["at"]), e["actorKind"], e["severity"], e["automatic"]) for e in data["events"]] == [
        ("created", FRIDAY_1730, "system", "major", False),
        ("acknowledged", FRIDAY_1730, "system", None, True),  # the automatic acknowledgement of filing
        ("acknowledged", madrid(9, 8, 5), "staff", None, True),
    ]


async def test_an_unknown_or_malformed_id_is_null(gql):
    assert (await gql(TICKET, {"id": "00000000-0000-0000-0000-000000000000"}))["ticket"] is None
    assert (await gql(TICKET, {"id": "not-an-id"}))["ticket"] is None


async def test_a_customer_token_reads_its_own_tickets_only(connect: Connect, ctx, clock, make_customer, make_contract):
    own, _ = await support_customer(ctx, make_customer, make_contract)
    other, _ = await support_customer(ctx, make_customer, make_contract)
    mine, theirs = await file(ctx, clock, own, NOW), await file(ctx, clock, other, NOW)
    caller, _, _ = await connect.token(TokenScope.CUSTOMER, TokenAccess.READ, customer_id=own.id)
    seen = (await caller.data(TICKET, {"id": str(mine.id)}))["ticket"]
    assert seen["id"] == str(mine.id)
    assert [c["target"] for c in seen["sla"]] == ["first_response"]
    assert (await caller.data(TICKET, {"id": str(theirs.id)}))["ticket"] is None


async def test_a_partner_reads_tickets_of_customers_it_may_file_for(connect: Connect, ctx, clock, make_customer, make_contract):
    filing, _ = await support_customer(ctx, make_customer, make_contract)
    viewing, _ = await support_customer(ctx, make_customer, make_contract)
    code = unique("partner")
    partner = await parties.create_partner(ctx, ADMIN, parties.NewPartner(code=code, name=f"Partner {code}"))
    for customer, may_file in ((filing, True), (viewing, False)):
        await parties.link_partner(
            ctx, ADMIN, partner_id=partner.id, customer_id=customer.id, managed=True, production_access=False,
            can_file_tickets=may_file,
        )
    a, b = await file(ctx, clock, filing, NOW), await file(ctx, clock, viewing, NOW)
    caller, _, _ = await connect.token(TokenScope.PARTNER, TokenAccess.READ, partner_id=partner.id)
    assert (await caller.data(TICKET, {"id": str(a.id)}))["ticket"]["id"] == str(a.id)
    assert (await caller.data(TICKET, {"id": str(b.id)}))["ticket"] is None


# ---- SLA clocks end to end -----------------------------------------------------------------------


@pytest.fixture
async def friday_ticket(ctx, clock, make_customer, make_contract):  # type: ignore[no-untyped-def]
    customer, _ = await support_customer(ctx, make_customer, make_contract)
    return await file(ctx, clock, customer, FRIDAY_1730)


async def test_a_friday_evening_ticket_is_due_monday_0930_madrid(gql, clock, friday_ticket):
    fr = (await sla_at(gql, clock, friday_ticket, madrid(7, 10)))["first_response"]
    assert fr == {
        "target": "first_response", "calendar": "business-hours-es", "targetSeconds": 7200,
        "dueAt": "2026-03-09T08:30:00+00:00", "metAt": None, "breached": False, "paused": False,
        "elapsedSeconds": 1800, "remainingSeconds": 5400, "atRisk": False, "missedUpdates": 0,
    }
    assert instant(fr["dueAt"]) == madrid(9, 9, 30)


async def test_at_risk_from_80_percent_then_breached(gql, clock, friday_ticket):
    fr = (await sla_at(gql, clock, friday_ticket, madrid(9, 9, 5, 59)))["first_response"]
    assert (fr["atRisk"], fr["elapsedSeconds"]) == (False, 5759)
    fr = (await sla_at(gql, clock, friday_ticket, madrid(9, 9, 6)))["first_response"]  # 96 of 120 minutes
    assert (fr["atRisk"], fr["breached"], fr["remainingSeconds"]) == (True, False, 1440)
    fr = (await sla_at(gql, clock, friday_ticket, madrid(9, 9, 30, 1)))["first_response"]
    assert (fr["atRisk"], fr["breached"], fr["remainingSeconds"], fr["dueAt"]) == (
        False, True, 0, "2026-03-09T08:30:00+00:00",
    )


async def test_the_at_risk_share_comes_from_the_settings(settings, database, clock, ctx, friday_ticket):
    from api.app import create_app

    half = Connect(create_app(replace(settings, sla_at_risk_share=Decimal("0.5")), database=database, clock=clock), ctx)
    try:
        caller, _, _ = await half.token(TokenScope.PROVIDER, TokenAccess.READ)
        for at, risky in ((madrid(9, 8, 29, 59), False), (madrid(9, 8, 30), True)):  # 60 of 120 minutes
            clock.instant = at
            [fr] = (await caller.data(TICKET, {"id": str(friday_ticket.id)}))["ticket"]["sla"]
            assert fr["atRisk"] is risky
    finally:
        await half.close()


async def test_a_response_before_due_meets_the_clock(gql, ctx, clock, friday_ticket):
    await event(ctx, clock, friday_ticket, madrid(9, 9, 20), "responded")
    fr = (await sla_at(gql, clock, friday_ticket, madrid(10, 9)))["first_response"]
    assert instant(fr["metAt"]) == madrid(9, 9, 20)
    assert (fr["breached"], fr["atRisk"], fr["paused"], fr["remainingSeconds"], fr["elapsedSeconds"]) == (
        False, False, False, 0, 1800 + 80 * 60,
    )
    assert fr["dueAt"] == "2026-03-09T08:30:00+00:00"


async def test_waiting_on_the_customer_pauses_and_resuming_shifts_the_due_instant(gql, ctx, clock, friday_ticket):
    await event(ctx, clock, friday_ticket, madrid(9, 8, 15), "waiting_on_customer")
    for at in (madrid(9, 9), madrid(9, 12)):
        fr = (await sla_at(gql, clock, friday_ticket, at))["first_response"]
        assert (fr["paused"], fr["dueAt"], fr["breached"], fr["remainingSeconds"], fr["elapsedSeconds"]) == (
            True, None, False, 4500, 2700,
        )
    await event(ctx, clock, friday_ticket, madrid(9, 13), "resumed")
    fr = (await sla_at(gql, clock, friday_ticket, madrid(9, 13)))["first_response"]
    # Paused 08:15-13:00 (4 h 45 min of open time): due 09:30 + 4:45 = 14:15 Madrid.
    assert (fr["paused"], instant(fr["dueAt"]), fr["remainingSeconds"]) == (False, madrid(9, 14, 15), 4500)


async def test_a_severity_change_recomputes_the_clock(gql, ctx, clock, make_customer, make_contract):
    customer, _ = await support_customer(ctx, make_customer, make_contract, "premium-availability", "premium-16")
    ticket = await file(ctx, clock, customer, NOW, "incident", "s2")
    fr = (await sla_at(gql, clock, ticket, NOW + timedelta(minutes=5)))["first_response"]
    assert (fr["targetSeconds"], instant(fr["dueAt"])) == (5400, NOW + timedelta(minutes=90))
    await event(ctx, clock, ticket, NOW + timedelta(minutes=15), "severity_changed", severity="s1")
    data = (await gql(TICKET, {"id": str(ticket.id)}))["ticket"]
    [fr] = data["sla"]
    assert data["severity"] == "s1"
    assert (fr["targetSeconds"], instant(fr["dueAt"]), fr["remainingSeconds"], fr["atRisk"]) == (
        1200, NOW + timedelta(minutes=20), 300, False,
    )


async def test_an_s1_update_interval_follows_the_first_response_and_stated_next_update(gql, ctx, clock, make_customer, make_contract):
    customer, _ = await support_customer(ctx, make_customer, make_contract, "premium-availability", "premium-16")
    ticket = await file(ctx, clock, customer, NOW, "incident", "s1")
    responded = NOW + timedelta(minutes=12)
    await event(ctx, clock, ticket, responded, "responded")
    clocks = await sla_at(gql, clock, ticket, responded + timedelta(minutes=1))
    assert list(clocks) == ["first_response", "update_interval"]
    assert (instant(clocks["first_response"]["metAt"]), clocks["first_response"]["breached"]) == (responded, False)
    up = clocks["update_interval"]
    assert (up["calendar"], up["targetSeconds"], instant(up["dueAt"]), up["missedUpdates"]) == (
        "always", 1800, responded + timedelta(minutes=30), 0,
    )

    updated, stated = responded + timedelta(minutes=20), responded + timedelta(minutes=110)
    await event(ctx, clock, ticket, updated, "updated", next_update_at=stated)
    data = (await gql(TICKET, {"id": str(ticket.id)}))["ticket"]
    assert instant(data["events"][-1]["nextUpdateAt"]) == stated
    up = {c["target"]: c for c in data["sla"]}["update_interval"]
    assert (instant(up["dueAt"]), up["targetSeconds"], up["breached"]) == (stated, 90 * 60, False)
    up = (await sla_at(gql, clock, ticket, stated + timedelta(seconds=1)))["update_interval"]
    assert up["breached"]


# ---- calendarWindows -----------------------------------------------------------------------------


async def windows(gql, program: str, calendar: str, start: str, end: str, **kwargs: Any):  # type: ignore[no-untyped-def]
    return await gql(WINDOWS, {"p": program, "c": calendar, "from": start, "to": end}, **kwargs)


async def test_business_hours_from_friday_to_monday(gql, shipped_programs):
    data = await windows(gql, "partner-support", "business-hours-es", "2026-03-06", "2026-03-09")
    assert data["calendarWindows"] == [
        {"start": "2026-03-06T08:00:00+01:00", "end": "2026-03-06T18:00:00+01:00"},
        {"start": "2026-03-09T08:00:00+01:00", "end": "2026-03-09T18:00:00+01:00"},
    ]


async def test_business_hours_skip_spanish_holidays_and_follow_summer_time(gql, shipped_programs):
    # 2026-04-03 is Good Friday (an ES national holiday); summer time started on 2026-03-29.
    data = await windows(gql, "partner-support", "business-hours-es", "2026-04-02", "2026-04-06")
    assert data["calendarWindows"] == [
        {"start": "2026-04-02T08:00:00+02:00", "end": "2026-04-02T18:00:00+02:00"},
        {"start": "2026-04-06T08:00:00+02:00", "end": "2026-04-06T18:00:00+02:00"},
    ]


@pytest.mark.parametrize(
    ("start", "end", "window"),
    [
        ("2026-03-28", "2026-03-30", ("2026-03-28T00:00:00+01:00", "2026-03-31T00:00:00+02:00")),  # 71 hours
        ("2026-10-24", "2026-10-26", ("2026-10-24T00:00:00+02:00", "2026-10-27T00:00:00+01:00")),  # 73 hours
        ("2026-12-31", "2027-01-01", ("2026-12-31T00:00:00+01:00", "2027-01-02T00:00:00+01:00")),
    ],
)
async def test_a_24_7_calendar_is_one_window_across_clock_changes(gql, shipped_programs, start, end, window):
    data = await windows(gql, "premium-availability", "always", start, end)
    assert [(w["start"], w["end"]) for w in data["calendarWindows"]] == [window]


async def test_any_caller_may_read_calendar_windows(connect: Connect, ctx, make_customer):
    customer = await make_customer()
    caller, _, _ = await connect.token(TokenScope.CUSTOMER, TokenAccess.READ, customer_id=customer.id)
    data = await caller.data(WINDOWS, {"p": "partner-support", "c": "business-hours-es", "from": "2026-03-07", "to": "2026-03-08"})
    assert data["calendarWindows"] == []  # a weekend


async def refusal(gql, program: str, calendar: str, start: str, end: str) -> str:  # type: ignore[no-untyped-def]
    body = await windows(gql, program, calendar, start, end, allow_errors=True)
    assert body["data"] is None
    [error] = body["errors"]
    assert error["path"] == ["calendarWindows"]
    return error["message"]


async def test_an_unknown_program_is_named(gql, shipped_programs):
    code = unique("no-such-program")
    message = await refusal(gql, code, "always", "2026-03-06", "2026-03-09")
    assert message == f"program '{code}' does not exist"


async def test_an_unknown_calendar_lists_the_programs_calendars(gql, shipped_programs):
    message = await refusal(gql, "premium-availability", "business-hours-es", "2026-03-06", "2026-03-09")
    assert "premium-availability/business-hours-es" in message
    assert "always" in message and "weekdays-de" in message


async def test_a_range_ending_before_it_starts_is_refused(gql, shipped_programs):
    message = await refusal(gql, "partner-support", "business-hours-es", "2026-03-09", "2026-03-06")
    assert message == "the range ends (2026-03-06) before it starts (2026-03-09)"


async def test_at_most_366_days_at_a_time(gql, shipped_programs):
    first = date(2026, 1, 1)
    longest = (first + timedelta(days=365)).isoformat()  # 366 days, first and last included
    data = await windows(gql, "premium-availability", "always", first.isoformat(), longest)
    assert data["calendarWindows"] == [{"start": "2026-01-01T00:00:00+01:00", "end": "2027-01-02T00:00:00+01:00"}]
    message = await refusal(gql, "premium-availability", "always", first.isoformat(), (first + timedelta(days=366)).isoformat())
    assert message == "ask for at most 366 days at a time"


async def test_a_single_day_is_allowed(gql, shipped_programs):
    data = await windows(gql, "partner-support", "business-hours-es", "2026-03-10", "2026-03-10")
    assert data["calendarWindows"] == [{"start": "2026-03-10T08:00:00+01:00", "end": "2026-03-10T18:00:00+01:00"}]
    assert datetime.fromisoformat(data["calendarWindows"][0]["start"]).astimezone(UTC) == datetime(2026, 3, 10, 7, tzinfo=UTC)

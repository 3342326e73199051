"""Tickets at service level: opening one (what it writes, what it refuses and then writes nothing),
recording events (staff only, validated, status following the events), who sees which ticket, and the
SLA clocks replayed from the stored history as the clock moves."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from api.config import PROJECT_ROOT
from api.domain.sla import TargetClock
from api.models import (
    AuditEntry,
    StaffRole,
    Ticket,
    TicketEventRecord,
    TokenAccess,
    TokenScope,
    UserKind,
)
from api.programs.loader import parse_program
from api.services import identity, parties, programs, tickets
from api.services.context import Actor, AppContext, FixedClock
from api.services.errors import (
    DomainError,
    ErrorCode,
    NotFound,
    OutOfScope,
    PermissionDenied,
    ValidationFailed,
)
from api.services.tickets import NewTicket
from tests.conftest import ADMIN, NOW, unique

MADRID = ZoneInfo("Europe/Madrid")
ENGINEER = Actor(kind="staff", ref="user:engineer", name="Sam Support", roles=frozenset({"support_engineer"}))
# Friday 2026-03-06, half an hour before the Madrid business day closes (CET, UTC+1).
FRIDAY_1730 = datetime(2026, 3, 6, 17, 30, tzinfo=MADRID)
# Two business hours later: 30 minutes on Friday, 90 on Monday morning.
MONDAY_DUE = datetime(2026, 3, 9, 9, 30, tzinfo=MADRID)


# What diagnostic types (incidents, behaviour checks) need before they can be filed.
DIAGNOSIS = {
    "affected_account": "acme-prod",
    "steps_followed": "Started a full product export",
    "expected_result": "Every product exported",
}


def madrid(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, second, tzinfo=MADRID)


# ---- helpers -------------------------------------------------------------------------------------


async def support_customer(make_customer, make_contract, plan: str = "enterprise", **fields):  # type: ignore[no-untyped-def]
    """A customer with a partner-support contract (2026-02-15 for a year, 10 support hours)."""
    customer = await make_customer()
    contract = await make_contract(
        program="partner-support", plan=plan, customer=customer, custom_allowances={"support-hours": 600}, **fields
    )
    return customer, contract


async def availability_customer(make_customer, make_contract):  # type: ignore[no-untyped-def]
    customer = await make_customer()
    contract = await make_contract(program="premium-availability", plan="premium-16", customer=customer)
    return customer, contract


async def file(  # type: ignore[no-untyped-def]
    ctx: AppContext, clock: FixedClock, customer, at: datetime, ticket_type: str = "incident",
    severity: str = "major", actor: Actor = ADMIN, subject: str = "Product export stops halfway",
) -> Ticket:
    clock.instant = at
    return await tickets.open_ticket(ctx, actor, NewTicket(customer.id, ticket_type, severity, subject, **DIAGNOSIS))


async def event(  # type: ignore[no-untyped-def]
    ctx: AppContext, clock: FixedClock, ticket: Ticket, at: datetime, kind: str, actor: Actor = ENGINEER, **fields
) -> TicketEventRecord:
    clock.instant = at
    return await tickets.record_event(ctx, actor, ticket.id, kind, **fields)


async def clocks_at(ctx: AppContext, clock: FixedClock, ticket: Ticket, at: datetime) -> dict[str, TargetClock]:
    clock.instant = at
    found = await tickets.sla_for_tickets(ctx, ADMIN, [ticket.id])
    return {c.target: c for c in found[ticket.id]}


async def rows(ctx: AppContext) -> dict[str, int]:
    async with ctx.db.read() as session:
        return {
            m.__tablename__: await session.scalar(select(func.count()).select_from(m))
            for m in (Ticket, TicketEventRecord, AuditEntry)
        }


async def stored(ctx: AppContext, ticket_id: uuid.UUID) -> tuple[Ticket, list[TicketEventRecord], list[AuditEntry]]:
    async with ctx.db.read() as session:
        ticket = await session.get(Ticket, ticket_id)
        events = list(
            await session.scalars(
                select(TicketEventRecord)
                .where(TicketEventRecord.ticket_id == ticket_id)
                .order_by(TicketEventRecord.at, TicketEventRecord.position)
            )
        )
        audits = list(
            await session.scalars(
                select(AuditEntry).where(AuditEntry.target_id == str(ticket_id)).order_by(AuditEntry.occurred_at)
            )
        )
    assert ticket is not None
    return ticket, events, audits


async def refused(ctx: AppContext, coroutine, error: type[DomainError] = DomainError) -> DomainError:  # type: ignore[no-untyped-def]
    """The refusal the call raises; it must leave tickets, events and the audit log untouched."""
    before = await rows(ctx)
    with pytest.raises(error) as raised:
        await coroutine
    assert await rows(ctx) == before
    return raised.value


def customer_actor(customer_id: uuid.UUID) -> Actor:
    return Actor(kind="customer", ref=f"user:{uuid.uuid4()}", name="A customer user", customer_id=customer_id)


def partner_actor(partner) -> Actor:  # type: ignore[no-untyped-def]
    return Actor(kind="partner", ref=f"user:{uuid.uuid4()}", name=f"User of {partner.name}", partner_id=partner.id)


async def make_partner(ctx: AppContext):  # type: ignore[no-untyped-def]
    code = unique("partner")
    return await parties.create_partner(ctx, ADMIN, parties.NewPartner(code=code, name=f"Partner {code}"))


# ---- opening a ticket ----------------------------------------------------------------------------


async def test_opening_a_ticket_writes_the_ticket_its_created_event_and_an_audit_row(ctx, clock, make_customer, make_contract):
    customer, contract = await support_customer(make_customer, make_contract)
    ticket = await file(ctx, clock, customer, FRIDAY_1730, subject="  Product export stops halfway  ")

    row, events, audits = await stored(ctx, ticket.id)
    assert (row.customer_id, row.contract_id, row.ticket_type, row.severity, row.status) == (
        customer.id, contract.id, "incident", "major", "new",
    )
    assert row.subject == "Product export stops halfway"
    assert (row.filed_by_kind, row.filed_by_ref, row.via_partner_id) == ("system", ADMIN.ref, None)
    assert row.created_at == FRIDAY_1730
    assert [(e.kind, e.at, e.severity, e.plan, e.actor_kind, e.automatic) for e in events] == [
        ("created", FRIDAY_1730, "major", "enterprise", "system", False),
        ("acknowledged", FRIDAY_1730, None, None, "system", True),  # the auto-reply (issue 5)
    ]
    [audit] = audits
    assert (audit.action, audit.target_type, audit.on_behalf_of_customer_id, audit.occurred_at) == (
        "ticket.create", "ticket", customer.id, FRIDAY_1730,
    )
    assert audit.detail == {"type": "incident", "severity": "major"}


async def test_a_customer_and_a_linked_partner_file_for_the_customer(ctx, clock, make_customer, make_contract):
    customer, _ = await support_customer(make_customer, make_contract)
    partner = await make_partner(ctx)
    await parties.link_partner(ctx, ADMIN, partner_id=partner.id, customer_id=customer.id, managed=True, production_access=False)

    own = await file(ctx, clock, customer, NOW, "question", "standard", actor=customer_actor(customer.id))
    relayed = await file(ctx, clock, customer, NOW, "behaviour-check", "standard", actor=partner_actor(partner))

    assert (own.filed_by_kind, own.via_partner_id) == ("customer", None)
    assert (relayed.filed_by_kind, relayed.via_partner_id) == ("partner", partner.id)
    _, _, [audit] = await stored(ctx, relayed.id)
    assert (audit.actor_kind, audit.partner_id, audit.on_behalf_of_customer_id) == ("partner", partner.id, customer.id)


async def test_a_ticket_type_the_plan_does_not_offer_is_refused_with_the_offered_types(ctx, clock, make_customer, make_contract):
    customer, _ = await support_customer(make_customer, make_contract)
    error = await refused(ctx, file(ctx, clock, customer, NOW, "api-outage", "critical"), ValidationFailed)
    assert error.field == "ticketType"
    assert "'api-outage'" in error.message
    assert "offered: behaviour-check, incident, integration-support, question" in error.message


@pytest.mark.parametrize(
    ("ticket_type", "severity", "offered"),
    [
        ("incident", "standard", "critical, major, minor"),  # the plan has it, the type does not
        ("question", "critical", "standard"),
        ("incident", "s1", "critical, major, minor"),  # not a severity of this plan at all
    ],
)
async def test_a_severity_the_plan_or_type_does_not_offer_is_refused_with_the_offered_ones(
    ctx, clock, make_customer, make_contract, ticket_type, severity, offered
):
    customer, _ = await support_customer(make_customer, make_contract)
    error = await refused(ctx, file(ctx, clock, customer, NOW, ticket_type, severity), ValidationFailed)
    assert error.field == "severity"
    assert f"severity {severity!r}" in error.message
    assert f"(it has: {offered})" in error.message


async def test_a_severity_another_plan_uses_is_refused_with_this_plans_severities(ctx, clock, make_customer, make_contract):
    customer, _ = await availability_customer(make_customer, make_contract)
    error = await refused(ctx, file(ctx, clock, customer, NOW, "incident", "critical"), ValidationFailed)
    assert "(it has: s1, s2)" in error.message


@pytest.mark.parametrize("subject", ["", "   ", "x" * 301])
async def test_an_empty_or_overlong_subject_is_refused(ctx, clock, make_customer, make_contract, subject):
    customer, _ = await support_customer(make_customer, make_contract)
    error = await refused(ctx, file(ctx, clock, customer, NOW, subject=subject), ValidationFailed)
    assert error.field == "subject"


async def test_a_customer_user_filing_for_another_customer_is_out_of_scope(ctx, clock, make_customer, make_contract):
    customer, _ = await support_customer(make_customer, make_contract)
    other, _ = await support_customer(make_customer, make_contract)
    error = await refused(ctx, file(ctx, clock, other, NOW, actor=customer_actor(customer.id)), OutOfScope)
    assert error.code == ErrorCode.OUT_OF_SCOPE
    assert error.field == "customerId"


async def test_a_partner_not_allowed_to_file_for_the_customer_is_refused(ctx, clock, make_customer, make_contract):
    customer, _ = await support_customer(make_customer, make_contract)
    partner = await make_partner(ctx)
    await parties.link_partner(
        ctx, ADMIN, partner_id=partner.id, customer_id=customer.id, managed=True, production_access=False,
        can_file_tickets=False,
    )
    await refused(ctx, file(ctx, clock, customer, NOW, actor=partner_actor(partner)), PermissionDenied)
    stranger = await make_partner(ctx)
    error = await refused(ctx, file(ctx, clock, customer, NOW, actor=partner_actor(stranger)), OutOfScope)
    assert error.code == ErrorCode.OUT_OF_SCOPE


@pytest.mark.parametrize("scope", [TokenScope.CUSTOMER, TokenScope.PROVIDER])
async def test_a_read_only_token_may_not_file_a_ticket(ctx, clock, make_customer, make_contract, scope):
    customer, _ = await support_customer(make_customer, make_contract)
    target = {"customer_id": customer.id} if scope == TokenScope.CUSTOMER else {}
    token, _ = await identity.create_token(ctx, ADMIN, identity.NewToken(unique("token"), scope, TokenAccess.READ, **target))
    actor = identity.actor_for_token(token)
    assert actor.read_only
    error = await refused(ctx, file(ctx, clock, customer, NOW, actor=actor), PermissionDenied)
    assert "read-only" in error.message


async def test_a_ticket_needs_a_contract_in_force(ctx, clock, make_customer, make_contract):
    customer, _ = await support_customer(make_customer, make_contract)
    error = await refused(ctx, file(ctx, clock, customer, datetime(2026, 2, 1, 12, tzinfo=UTC)), ValidationFailed)
    assert "no contract in force" in error.message


# ---- recording events ----------------------------------------------------------------------------


@pytest.fixture
async def ticket(ctx, clock, make_customer, make_contract) -> Ticket:  # type: ignore[no-untyped-def]
    customer, _ = await support_customer(make_customer, make_contract)
    return await file(ctx, clock, customer, NOW)


async def test_recording_an_event_stores_it_and_audits_it(ctx, clock, ticket):
    at = NOW + timedelta(minutes=5)
    recorded = await event(ctx, clock, ticket, at, "responded")
    assert (recorded.kind, recorded.at, recorded.actor_kind, recorded.actor_ref, recorded.automatic) == (
        "responded", at, "staff", ENGINEER.ref, False,
    )
    row, events, audits = await stored(ctx, ticket.id)
    assert [e.kind for e in events] == ["created", "acknowledged", "responded"]
    assert row.status == "in_progress"
    assert [(a.action, a.actor_ref, a.on_behalf_of_customer_id) for a in audits][-1] == (
        "ticket.responded", ENGINEER.ref, ticket.customer_id,
    )


@pytest.mark.parametrize("kind", ["escalated", "created", ""])
async def test_an_unknown_kind_or_created_is_refused(ctx, clock, ticket, kind):
    error = await refused(ctx, event(ctx, clock, ticket, NOW + timedelta(minutes=1), kind), ValidationFailed)
    assert error.field == "kind"
    assert f"{kind!r}" in error.message
    offered = error.message.split(" is not one of ")[1].split(", ")
    assert "acknowledged" in offered and "created" not in offered


async def test_a_severity_change_needs_a_severity_the_plan_and_type_offer(ctx, clock, ticket):
    at = NOW + timedelta(minutes=1)
    error = await refused(ctx, event(ctx, clock, ticket, at, "severity_changed"), ValidationFailed)
    assert error.field == "severity"
    for unknown in ("urgent", "standard"):  # not in the plan; in the plan, not for an incident
        error = await refused(ctx, event(ctx, clock, ticket, at, "severity_changed", severity=unknown), ValidationFailed)
        assert error.field == "severity"
        assert "(it has: critical, major, minor)" in error.message
    row, _, _ = await stored(ctx, ticket.id)
    assert row.severity == "major"

    await event(ctx, clock, ticket, at, "severity_changed", severity="critical")
    row, events, _ = await stored(ctx, ticket.id)
    assert row.severity == "critical"
    assert (events[-1].kind, events[-1].severity) == ("severity_changed", "critical")


async def test_a_next_update_must_be_announced_for_a_later_time(ctx, clock, ticket):
    at = NOW + timedelta(minutes=10)
    for stated in (at, at - timedelta(seconds=1)):
        error = await refused(ctx, event(ctx, clock, ticket, at, "updated", next_update_at=stated), ValidationFailed)
        assert error.field == "nextUpdateAt"
    error = await refused(
        ctx, event(ctx, clock, ticket, at, "updated", next_update_at=(at + timedelta(hours=1)).replace(tzinfo=None)),
        ValidationFailed,
    )
    assert error.field == "nextUpdateAt"
    recorded = await event(ctx, clock, ticket, at, "updated", next_update_at=at + timedelta(hours=1))
    assert recorded.next_update_at == at + timedelta(hours=1)


async def test_a_plan_change_names_a_plan_of_the_program_and_a_severity_it_offers(ctx, clock, ticket):
    at = NOW + timedelta(minutes=1)
    error = await refused(ctx, event(ctx, clock, ticket, at, "plan_changed"), ValidationFailed)
    assert error.field == "plan"
    error = await refused(ctx, event(ctx, clock, ticket, at, "plan_changed", plan="premium-16"), ValidationFailed)
    assert "'premium-16'" in error.message
    error = await refused(ctx, event(ctx, clock, ticket, at, "plan_changed", plan="premium", severity="s1"), ValidationFailed)
    assert error.field == "severity"
    await event(ctx, clock, ticket, at, "plan_changed", plan="premium")
    [first_response] = (await tickets.sla_for_tickets(ctx, ADMIN, [ticket.id]))[ticket.id]
    assert first_response.target_seconds == 12 * 3600


def availability_with_other_severities(code: str) -> str:
    """premium-availability under another code, plus a plan whose severities are named p1 / p2."""
    text = (PROJECT_ROOT / "programs" / "premium-availability.toml").read_text()
    return text.replace('code = "premium-availability"', f'code = "{code}"', 1) + """
[plans.standard-care]
name = "Standard care"
description = "Plain support with its own severity names."
channels = ["support-website"]
response_guarantee = true
sla = true
reporting = { consumption_report = "none" }

[plans.standard-care.severities.p1]
name = "P1"
description = "Urgent."
rank = 1
first_response = { hours = 1, calendar = "always" }

[plans.standard-care.severities.p2]
name = "P2"
description = "Not urgent."
rank = 2
first_response = { hours = 8, calendar = "always" }

[plans.standard-care.ticket_types.incident]
name = "Incident"
category = "incident"
channels = ["support-website"]
severities = ["p1", "p2"]
response_guarantee = true
guarantee = "First response within the severity's target."
"""


async def test_a_plan_change_carries_a_severity_of_the_new_plan_and_later_changes_follow_it(
    ctx, clock, make_customer, make_contract
):
    code = unique("two-namings")
    await programs.load_programs(ctx, ADMIN, [parse_program(availability_with_other_severities(code), file="two.toml")])
    customer = await make_customer()
    await make_contract(program=code, plan="premium-16", customer=customer)
    ticket = await file(ctx, clock, customer, NOW, "incident", "s2")
    at = NOW + timedelta(minutes=5)

    # Without a severity, or with one of the old plan, the history could not be replayed: refused.
    for severity in (None, "s1"):
        error = await refused(
            ctx, event(ctx, clock, ticket, at, "plan_changed", plan="standard-care", severity=severity), ValidationFailed
        )
        assert (error.field, "(it has: p1, p2)" in error.message) == ("severity", True)
    await event(ctx, clock, ticket, at, "plan_changed", plan="standard-care", severity="p1")
    row, _, _ = await stored(ctx, ticket.id)
    assert row.severity == "p1"
    fr = (await clocks_at(ctx, clock, ticket, at))["first_response"]
    assert (fr.target_seconds, fr.due_at) == (3600, NOW + timedelta(hours=1))

    # A severity change is judged by the plan now in force, not by the contract's.
    later = NOW + timedelta(minutes=10)
    error = await refused(ctx, event(ctx, clock, ticket, later, "severity_changed", severity="s1"), ValidationFailed)
    assert "(it has: p1, p2)" in error.message
    await event(ctx, clock, ticket, later, "severity_changed", severity="p2")
    fr = (await clocks_at(ctx, clock, ticket, later))["first_response"]
    assert (fr.target_seconds, fr.due_at) == (8 * 3600, NOW + timedelta(hours=8))


@pytest.mark.parametrize("kind", ["responded", "resolved"])
async def test_customers_and_partners_may_not_record_events(ctx, clock, make_customer, make_contract, kind):
    customer, _ = await support_customer(make_customer, make_contract)
    partner = await make_partner(ctx)
    await parties.link_partner(ctx, ADMIN, partner_id=partner.id, customer_id=customer.id, managed=True, production_access=False)
    mine = await file(ctx, clock, customer, NOW, actor=customer_actor(customer.id))
    for actor in (customer_actor(customer.id), partner_actor(partner)):
        await refused(ctx, event(ctx, clock, mine, NOW, kind, actor=actor), PermissionDenied)


async def test_a_read_only_provider_token_may_not_record_events(ctx, clock, ticket):
    token, _ = await identity.create_token(
        ctx, ADMIN, identity.NewToken(unique("token"), TokenScope.PROVIDER, TokenAccess.READ)
    )
    await refused(ctx, event(ctx, clock, ticket, NOW, "responded", actor=identity.actor_for_token(token)), PermissionDenied)


async def test_an_invisible_or_unknown_ticket_is_not_found(ctx, clock, ticket, make_customer):
    manager = await identity.create_user(
        ctx, ADMIN, identity.NewUser(f"{unique('cm')}@entitle.example", "Cleo Manager", "long enough password",
                                     UserKind.STAFF, staff_role=StaffRole.CLIENT_MANAGER),
    )
    error = await refused(
        ctx, event(ctx, clock, ticket, NOW, "responded", actor=identity.actor_for_user(manager)), NotFound
    )
    assert error.field == "ticketId"
    clock.instant = NOW
    await refused(ctx, tickets.record_event(ctx, ENGINEER, uuid.uuid4(), "responded"), NotFound)


async def test_the_status_follows_the_events(ctx, clock, ticket):
    expected = [
        ("acknowledged", "acknowledged"),
        ("responded", "in_progress"),
        ("waiting_on_customer", "waiting_on_customer"),
        ("resumed", "in_progress"),
        ("updated", "in_progress"),
        ("severity_changed", "in_progress"),
        ("resolved", "resolved"),
        ("reopened", "in_progress"),
        ("resolved", "resolved"),
        ("closed", "closed"),
    ]
    for minute, (kind, status) in enumerate(expected, start=1):
        extra = {"severity": "critical"} if kind == "severity_changed" else {}
        await event(ctx, clock, ticket, NOW + timedelta(minutes=minute), kind, **extra)
        row, _, _ = await stored(ctx, ticket.id)
        assert row.status == status, kind
    _, events, _ = await stored(ctx, ticket.id)
    assert [e.kind for e in events] == ["created", "acknowledged"] + [k for k, _ in expected]


async def test_events_at_the_same_instant_keep_the_order_they_were_recorded_in(ctx, clock, ticket):
    # Waiting on the customer and resumed within the same second: replayed in that order, not paused.
    await event(ctx, clock, ticket, NOW + timedelta(minutes=1), "waiting_on_customer")
    await event(ctx, clock, ticket, NOW + timedelta(minutes=1), "resumed")
    view = (await tickets.get_tickets(ctx, ADMIN, [ticket.id]))[ticket.id]
    assert [e.kind for e in view.events] == ["created", "acknowledged", "waiting_on_customer", "resumed"]
    assert [e.position for e in view.events] == [1, 2, 3, 4]
    [clocks] = (await tickets.sla_for_tickets(ctx, ADMIN, [ticket.id])).values()
    assert not any(c.paused for c in clocks)


async def test_a_ticket_view_carries_its_events_in_order(ctx, clock, ticket):
    await event(ctx, clock, ticket, NOW + timedelta(minutes=2), "responded")
    await event(ctx, clock, ticket, NOW + timedelta(minutes=1), "acknowledged", automatic=True)  # recorded late
    view = (await tickets.get_tickets(ctx, ADMIN, [ticket.id]))[ticket.id]
    assert [(e.kind, e.automatic) for e in view.events] == [
        ("created", False), ("acknowledged", True), ("acknowledged", True), ("responded", False),
    ]
    assert (view.plan.record.code, view.plan.program.code) == ("enterprise", "partner-support")


# ---- who sees which ticket -----------------------------------------------------------------------


async def test_a_customer_sees_its_own_tickets_only(ctx, clock, make_customer, make_contract):
    a, _ = await support_customer(make_customer, make_contract)
    b, _ = await support_customer(make_customer, make_contract)
    ta, tb = await file(ctx, clock, a, NOW), await file(ctx, clock, b, NOW)
    assert set(await tickets.get_tickets(ctx, customer_actor(a.id), [ta.id, tb.id])) == {ta.id}
    assert set(await tickets.sla_for_tickets(ctx, customer_actor(b.id), [ta.id, tb.id])) == {tb.id}


async def test_a_partner_sees_the_tickets_of_customers_it_may_file_for(ctx, clock, make_customer, make_contract):
    filing, _ = await support_customer(make_customer, make_contract)
    viewing, _ = await support_customer(make_customer, make_contract)
    unlinked, _ = await support_customer(make_customer, make_contract)
    partner = await make_partner(ctx)
    await parties.link_partner(ctx, ADMIN, partner_id=partner.id, customer_id=filing.id, managed=True, production_access=False)
    await parties.link_partner(
        ctx, ADMIN, partner_id=partner.id, customer_id=viewing.id, managed=True, production_access=False,
        can_file_tickets=False, can_view_entitlements=True,
    )
    found = [await file(ctx, clock, c, NOW) for c in (filing, viewing, unlinked)]
    seen = await tickets.get_tickets(ctx, partner_actor(partner), [t.id for t in found])
    assert set(seen) == {found[0].id}


async def test_a_client_manager_sees_tickets_on_assigned_contracts_only(ctx, clock, make_customer, make_contract):
    manager = await identity.create_user(
        ctx, ADMIN, identity.NewUser(f"{unique('cm')}@entitle.example", "Cleo Manager", "long enough password",
                                     UserKind.STAFF, staff_role=StaffRole.CLIENT_MANAGER),
    )
    assigned, _ = await support_customer(make_customer, make_contract, client_manager_email=manager.email)
    other, _ = await support_customer(make_customer, make_contract)
    mine, theirs = await file(ctx, clock, assigned, NOW), await file(ctx, clock, other, NOW)
    actor = identity.actor_for_user(manager)
    assert set(await tickets.get_tickets(ctx, actor, [mine.id, theirs.id])) == {mine.id}
    await event(ctx, clock, mine, NOW + timedelta(minutes=1), "responded", actor=actor)
    await refused(ctx, event(ctx, clock, theirs, NOW + timedelta(minutes=1), "responded", actor=actor), NotFound)
    # Support engineers and the system see every ticket.
    assert set(await tickets.get_tickets(ctx, ENGINEER, [mine.id, theirs.id])) == {mine.id, theirs.id}


# ---- SLA clocks: partner-support enterprise, business hours in Madrid ----------------------------


@pytest.fixture
async def friday_ticket(ctx, clock, make_customer, make_contract) -> Ticket:  # type: ignore[no-untyped-def]
    customer, _ = await support_customer(make_customer, make_contract)
    return await file(ctx, clock, customer, FRIDAY_1730)


async def test_a_friday_evening_ticket_is_due_on_monday_morning(ctx, clock, friday_ticket):
    clocks = await clocks_at(ctx, clock, friday_ticket, madrid(7, 12))  # Saturday noon
    assert list(clocks) == ["first_response"]
    fr = clocks["first_response"]
    assert (fr.calendar, fr.target_seconds, fr.started_at) == ("business-hours-es", 7200, FRIDAY_1730)
    assert fr.due_at == MONDAY_DUE == datetime(2026, 3, 9, 8, 30, tzinfo=UTC)
    assert (fr.met_at, fr.breached, fr.paused, fr.at_risk) == (None, False, False, False)
    assert (fr.elapsed_seconds, fr.remaining_seconds) == (1800, 5400)


@pytest.mark.parametrize(
    ("share", "risky_from"),
    [(None, madrid(9, 9, 6)), (Decimal("0.5"), madrid(9, 8, 30))],  # 96 and 60 of the 120 minutes
)
async def test_the_clock_is_at_risk_from_the_configured_share(ctx, clock, friday_ticket, share, risky_from):
    if share is not None:
        ctx = AppContext(db=ctx.db, settings=replace(ctx.settings, sla_at_risk_share=share), clock=clock)
    before = (await clocks_at(ctx, clock, friday_ticket, risky_from - timedelta(seconds=1)))["first_response"]
    assert not before.at_risk
    at = (await clocks_at(ctx, clock, friday_ticket, risky_from))["first_response"]
    assert at.at_risk and not at.breached
    assert at.due_at == MONDAY_DUE
    assert at.remaining_seconds == 7200 - at.elapsed_seconds


async def test_the_clock_is_breached_once_the_due_instant_has_passed(ctx, clock, friday_ticket):
    on_time = (await clocks_at(ctx, clock, friday_ticket, MONDAY_DUE))["first_response"]
    assert (on_time.breached, on_time.at_risk, on_time.remaining_seconds) == (False, True, 0)
    late = (await clocks_at(ctx, clock, friday_ticket, MONDAY_DUE + timedelta(seconds=1)))["first_response"]
    assert (late.breached, late.at_risk, late.remaining_seconds, late.due_at) == (True, False, 0, MONDAY_DUE)

    await event(ctx, clock, friday_ticket, madrid(9, 10), "responded")
    answered = (await clocks_at(ctx, clock, friday_ticket, madrid(10, 12)))["first_response"]
    assert (answered.met_at, answered.breached, answered.due_at) == (madrid(9, 10), True, MONDAY_DUE)


async def test_a_response_before_the_due_instant_meets_the_clock(ctx, clock, friday_ticket):
    await event(ctx, clock, friday_ticket, madrid(9, 8, 45), "acknowledged")  # not a response
    fr = (await clocks_at(ctx, clock, friday_ticket, madrid(9, 8, 50)))["first_response"]
    assert fr.met_at is None
    await event(ctx, clock, friday_ticket, madrid(9, 9), "responded", automatic=True)  # an auto-reply
    fr = (await clocks_at(ctx, clock, friday_ticket, madrid(9, 9, 1)))["first_response"]
    assert fr.met_at is None

    await event(ctx, clock, friday_ticket, madrid(9, 9, 15), "responded")
    fr = (await clocks_at(ctx, clock, friday_ticket, madrid(12, 12)))["first_response"]  # days later
    assert (fr.met_at, fr.due_at, fr.breached, fr.at_risk, fr.paused) == (madrid(9, 9, 15), MONDAY_DUE, False, False, False)
    assert (fr.elapsed_seconds, fr.remaining_seconds) == (1800 + 75 * 60, 0)


async def test_waiting_on_the_customer_pauses_and_resuming_moves_the_due_instant(ctx, clock, friday_ticket):
    await event(ctx, clock, friday_ticket, madrid(9, 8, 15), "waiting_on_customer")
    for at in (madrid(9, 9), madrid(9, 9, 45)):  # the second is past the original due instant
        fr = (await clocks_at(ctx, clock, friday_ticket, at))["first_response"]
        assert (fr.paused, fr.due_at, fr.breached, fr.at_risk) == (True, None, False, False)
        assert (fr.elapsed_seconds, fr.remaining_seconds) == (2700, 4500)

    await event(ctx, clock, friday_ticket, madrid(9, 10), "resumed")
    fr = (await clocks_at(ctx, clock, friday_ticket, madrid(9, 10)))["first_response"]
    # Paused 08:15-10:00: 1 h 45 min of open time, by which the due instant moves.
    assert fr.due_at == MONDAY_DUE + timedelta(hours=1, minutes=45) == madrid(9, 11, 15)
    assert (fr.paused, fr.breached, fr.remaining_seconds) == (False, False, 4500)
    late = (await clocks_at(ctx, clock, friday_ticket, madrid(9, 11, 15, 1)))["first_response"]
    assert late.breached


async def test_a_severity_change_recomputes_the_clock_from_creation(ctx, clock, make_customer, make_contract):
    customer, _ = await availability_customer(make_customer, make_contract)
    ticket = await file(ctx, clock, customer, NOW, "incident", "s2")
    fr = (await clocks_at(ctx, clock, ticket, NOW + timedelta(minutes=5)))["first_response"]
    assert (fr.target_seconds, fr.due_at, fr.calendar) == (5400, NOW + timedelta(minutes=90), "always")

    await event(ctx, clock, ticket, NOW + timedelta(minutes=10), "severity_changed", severity="s1")
    fr = (await clocks_at(ctx, clock, ticket, NOW + timedelta(minutes=10)))["first_response"]
    assert (fr.target_seconds, fr.due_at, fr.elapsed_seconds, fr.remaining_seconds) == (
        1200, NOW + timedelta(minutes=20), 600, 600,
    )
    fr = (await clocks_at(ctx, clock, ticket, NOW + timedelta(minutes=21)))["first_response"]
    assert fr.breached

    await event(ctx, clock, ticket, NOW + timedelta(minutes=22), "severity_changed", severity="s2")
    fr = (await clocks_at(ctx, clock, ticket, NOW + timedelta(minutes=22)))["first_response"]
    assert (fr.breached, fr.due_at) == (False, NOW + timedelta(minutes=90))


# ---- SLA clocks: premium-availability S1 progress updates -----------------------------------------


async def test_an_s1_ticket_owes_an_update_every_30_minutes_after_the_first_response(ctx, clock, make_customer, make_contract):
    customer, _ = await availability_customer(make_customer, make_contract)
    ticket = await file(ctx, clock, customer, NOW, "incident", "s1")
    assert "update_interval" not in await clocks_at(ctx, clock, ticket, NOW + timedelta(minutes=5))

    responded = NOW + timedelta(minutes=10)
    await event(ctx, clock, ticket, responded, "responded")
    clocks = await clocks_at(ctx, clock, ticket, responded + timedelta(minutes=5))
    assert list(clocks) == ["first_response", "update_interval"]
    assert (clocks["first_response"].met_at, clocks["first_response"].breached) == (responded, False)
    up = clocks["update_interval"]
    assert (up.started_at, up.due_at, up.target_seconds, up.calendar) == (
        responded, responded + timedelta(minutes=30), 1800, "always",
    )
    assert (up.elapsed_seconds, up.remaining_seconds, up.at_risk, up.missed_updates) == (300, 1500, False, 0)
    up = (await clocks_at(ctx, clock, ticket, responded + timedelta(minutes=24)))["update_interval"]
    assert up.at_risk
    up = (await clocks_at(ctx, clock, ticket, responded + timedelta(minutes=31)))["update_interval"]
    assert up.breached

    # A late update counts as missed and starts the next interval.
    late = responded + timedelta(minutes=35)
    await event(ctx, clock, ticket, late, "updated")
    up = (await clocks_at(ctx, clock, ticket, late))["update_interval"]
    assert (up.started_at, up.due_at, up.breached, up.missed_updates) == (late, late + timedelta(minutes=30), False, 1)


async def test_a_stated_next_update_moves_the_update_due_instant(ctx, clock, make_customer, make_contract):
    customer, _ = await availability_customer(make_customer, make_contract)
    ticket = await file(ctx, clock, customer, NOW, "incident", "s1")
    await event(ctx, clock, ticket, NOW + timedelta(minutes=10), "responded")
    updated, stated = NOW + timedelta(minutes=25), NOW + timedelta(minutes=100)
    await event(ctx, clock, ticket, updated, "updated", next_update_at=stated)

    up = (await clocks_at(ctx, clock, ticket, NOW + timedelta(minutes=60)))["update_interval"]
    assert (up.started_at, up.due_at, up.target_seconds, up.breached, up.missed_updates) == (updated, stated, 4500, False, 0)
    up = (await clocks_at(ctx, clock, ticket, stated + timedelta(seconds=1)))["update_interval"]
    assert up.breached

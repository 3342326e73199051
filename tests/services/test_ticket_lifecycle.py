"""The ticket lifecycle at service level: filing (diagnosis details, out-of-scope requests, the priority
flag, the automatic acknowledgement that never counts as a response), status transitions with their SLA
events and the reopening window, the conversation (who writes and sees what, what a reply records), the
outbox messages each step queues and to whom, and that every refusal leaves nothing behind."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from api.config import PROJECT_ROOT, Settings
from api.domain.sla import TargetClock
from api.models import (
    AuditEntry,
    LedgerEntry,
    OutboxMessage,
    Ticket,
    TicketComment,
    TicketEventRecord,
    TokenAccess,
    TokenScope,
)
from api.programs.loader import parse_program
from api.services import identity, outbox, parties, programs, tickets
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

ENGINEER = Actor(kind="staff", ref="user:engineer", name="Sam Support", roles=frozenset({"support_engineer"}))
DIAGNOSIS = {
    "affected_account": "acme-prod",
    "steps_followed": "Started a full product export from the catalogue page",
    "expected_result": "Every product in the export file",
}
TABLES = (Ticket, TicketEventRecord, TicketComment, OutboxMessage, AuditEntry, LedgerEntry)


# ---- helpers -------------------------------------------------------------------------------------


def customer_actor(customer_id: uuid.UUID) -> Actor:
    return Actor(kind="customer", ref=f"user:{uuid.uuid4()}", name="Cora Customer", customer_id=customer_id)


def partner_actor(partner) -> Actor:  # type: ignore[no-untyped-def]
    return Actor(kind="partner", ref=f"user:{uuid.uuid4()}", name=f"User of {partner.name}", partner_id=partner.id)


async def counts(ctx: AppContext) -> dict[str, int]:
    async with ctx.db.read() as session:
        return {t.__tablename__: await session.scalar(select(func.count()).select_from(t)) for t in TABLES}


async def refused(ctx: AppContext, coroutine, error: type[DomainError] = DomainError) -> DomainError:  # type: ignore[no-untyped-def]
    """The refusal the call raises: it must leave tickets, events, comments, outbox, audit and ledger untouched."""
    before = await counts(ctx)
    with pytest.raises(error) as raised:
        await coroutine
    assert await counts(ctx) == before
    return raised.value


async def customer_on(make_customer, make_contract, program: str = "partner-support", plan: str = "enterprise", **fields):  # type: ignore[no-untyped-def]
    customer = await make_customer(**fields)
    allowances = {"support-hours": 600} if program.startswith(("partner-support", "scoped")) else {}
    await make_contract(program=program, plan=plan, customer=customer, custom_allowances=allowances)
    return customer


async def make_partner(ctx: AppContext, email: str | None = None):  # type: ignore[no-untyped-def]
    code = unique("partner")
    return await parties.create_partner(ctx, ADMIN, parties.NewPartner(code=code, name=f"Partner {code}", email=email))


async def file(  # type: ignore[no-untyped-def]
    ctx: AppContext, clock: FixedClock, customer, ticket_type: str = "incident", severity: str = "major", *,
    at: datetime | None = None, actor: Actor = ADMIN, **fields: Any,
) -> Ticket:
    clock.instant = at or clock.instant
    values = {**DIAGNOSIS, **fields}
    return await tickets.open_ticket(
        ctx, actor, NewTicket(customer.id, ticket_type, severity, values.pop("subject", "Product export stops halfway"), **values)
    )


async def move(ctx, clock, ticket, to: str, *, at: datetime, actor: Actor = ENGINEER, **fields) -> Ticket:  # type: ignore[no-untyped-def]
    clock.instant = at
    return await tickets.transition_ticket(ctx, actor, ticket.id, to, **fields)


async def say(ctx, clock, ticket, body: str, *, at: datetime, actor: Actor = ENGINEER, **fields) -> TicketComment:  # type: ignore[no-untyped-def]
    clock.instant = at
    return await tickets.add_comment(ctx, actor, ticket.id, body, **fields)


async def stored(ctx: AppContext, ticket_id: uuid.UUID):  # type: ignore[no-untyped-def]
    async with ctx.db.read() as session:
        ticket = await session.get(Ticket, ticket_id)
        events = list(
            await session.scalars(
                select(TicketEventRecord)
                .where(TicketEventRecord.ticket_id == ticket_id)
                .order_by(TicketEventRecord.position)
            )
        )
        audits = list(
            await session.scalars(
                select(AuditEntry).where(AuditEntry.target_id == str(ticket_id)).order_by(AuditEntry.occurred_at)
            )
        )
    return ticket, events, audits


_LIFECYCLE = ("ticket_filed", "staff_reply", "waiting_on_customer", "resolved")


async def messages(ctx: AppContext, ticket_id: uuid.UUID) -> list[OutboxMessage]:
    """A ticket's messages in the order they were queued; the tests' fixed clock often queues several at
    one instant, where the lifecycle order breaks the tie."""
    async with ctx.db.read() as session:
        rows = await session.scalars(select(OutboxMessage).where(OutboxMessage.ticket_id == ticket_id))
        return sorted(
            rows,
            key=lambda m: (m.created_at, _LIFECYCLE.index(m.kind) if m.kind in _LIFECYCLE else len(_LIFECYCLE)),
        )


async def clocks_at(ctx: AppContext, clock: FixedClock, ticket: Ticket, at: datetime) -> dict[str, TargetClock]:
    clock.instant = at
    return {c.target: c for c in (await tickets.sla_for_tickets(ctx, ADMIN, [ticket.id]))[ticket.id]}


@pytest.fixture
async def customer(make_customer, make_contract):  # type: ignore[no-untyped-def]
    return await customer_on(make_customer, make_contract)


@pytest.fixture
async def ticket(ctx, clock, customer) -> Ticket:  # type: ignore[no-untyped-def]
    return await file(ctx, clock, customer, at=NOW)


# ---- filing: diagnosis details -------------------------------------------------------------------


async def test_a_filed_ticket_keeps_its_description_and_diagnosis_details(ctx, clock, customer):
    filed = await file(ctx, clock, customer, at=NOW, description="  The export stops at 40 %.  ")
    row, _, _ = await stored(ctx, filed.id)
    assert (row.description, row.affected_account, row.steps_followed, row.expected_result, row.priority_flag) == (
        "The export stops at 40 %.", DIAGNOSIS["affected_account"], DIAGNOSIS["steps_followed"],
        DIAGNOSIS["expected_result"], False,
    )


@pytest.mark.parametrize(
    ("missing", "field", "words"),
    [
        ("affected_account", "affectedAccount", "the affected account"),
        ("steps_followed", "stepsFollowed", "the steps followed"),
        ("expected_result", "expectedResult", "the expected result"),
    ],
)
@pytest.mark.parametrize("ticket_type", ["incident", "behaviour-check"])
async def test_a_diagnostic_type_without_one_detail_is_refused_naming_it(
    ctx, clock, customer, ticket_type, missing, field, words
):
    severity = "major" if ticket_type == "incident" else "standard"
    for blank in (None, "   "):
        error = await refused(ctx, file(ctx, clock, customer, ticket_type, severity, at=NOW, **{missing: blank}), ValidationFailed)
        assert error.field == field
        assert words in error.message and f"(missing: {field})" in error.message
        assert error.details["missing"] == [field]


async def test_all_missing_diagnosis_details_are_named_at_once(ctx, clock, customer):
    blank = dict.fromkeys(DIAGNOSIS)
    error = await refused(ctx, file(ctx, clock, customer, at=NOW, **blank), ValidationFailed)
    assert error.field == "affectedAccount"
    assert error.message == (
        "Incident needs the affected account, the steps followed, the expected result so the behaviour can be "
        "reproduced (missing: affectedAccount, stepsFollowed, expectedResult)"
    )


async def test_a_type_without_diagnosis_needs_none_of_the_details(ctx, clock, customer):
    asked = await file(ctx, clock, customer, "question", "standard", at=NOW, **dict.fromkeys(DIAGNOSIS))
    row, _, _ = await stored(ctx, asked.id)
    assert (row.affected_account, row.steps_followed, row.expected_result) == (None, None, None)


# ---- filing: out of scope / out of support -------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "label", "text"),
    [
        ("platform-customisation", "out of scope", "Tailoring the platform itself to a customer."),
        ("custom-formulas", "out of support", "Reviewing formulas the customer wrote; support only checks"),
    ],
)
async def test_a_request_about_an_excluded_item_is_refused_with_its_text(ctx, clock, customer, item, label, text):
    error = await refused(ctx, file(ctx, clock, customer, "question", "standard", at=NOW, scope_item=item), OutOfScope)
    assert (error.code, error.field, error.details["item"]) == (ErrorCode.OUT_OF_SCOPE, "scopeItem", item)
    assert error.message.startswith(f"{item!r} is {label} for Partner Support Program (Enterprise): ")
    assert text in error.message and error.details["text"].startswith(text)


async def test_a_partner_filing_an_excluded_request_is_refused_too(ctx, clock, customer):
    partner = await make_partner(ctx)
    await parties.link_partner(ctx, ADMIN, partner_id=partner.id, customer_id=customer.id, managed=True, production_access=True)
    error = await refused(
        ctx, file(ctx, clock, customer, "question", "standard", at=NOW, actor=partner_actor(partner), scope_item="channel-setup"),
        OutOfScope,
    )
    assert "Setting up sales channels" in error.message


async def test_an_item_on_no_list_is_filed_and_audited(ctx, clock, customer):
    filed = await file(ctx, clock, customer, "question", "standard", at=NOW, scope_item="bulk-import")
    _, _, [audit] = await stored(ctx, filed.id)
    assert audit.detail == {"type": "question", "severity": "standard", "scope_item": "bulk-import"}


def with_plan_and_partner_lists(code: str) -> str:
    """partner-support under another code, with an out-of-scope item on the plan and one on the partner program."""
    text = (PROJECT_ROOT / "programs" / "partner-support.toml").read_text()
    return text.replace('code = "partner-support"', f'code = "{code}"', 1) + """
[[plans.enterprise.out_of_scope]]
code = "data-migration"
text = "Migrating data from another system."

[[partners.out_of_scope]]
code = "partner-training"
text = "Training the partner's own consultants."
"""


async def test_items_on_the_plan_and_partner_program_lists_are_refused(ctx, clock, make_customer, make_contract):
    code = unique("scoped")
    await programs.load_programs(ctx, ADMIN, [parse_program(with_plan_and_partner_lists(code), file="scoped.toml")])
    customer = await customer_on(make_customer, make_contract, program=code)
    for item, text in (("data-migration", "Migrating data"), ("partner-training", "Training the partner")):
        error = await refused(ctx, file(ctx, clock, customer, "question", "standard", at=NOW, scope_item=item), OutOfScope)
        assert text in error.message


async def test_integration_support_still_follows_the_filing_rules(ctx, clock, customer):
    # The customer itself may not ask for integration support: it is for certified partners.
    error = await refused(
        ctx, file(ctx, clock, customer, "integration-support", "standard", at=NOW, actor=customer_actor(customer.id)),
        DomainError,
    )
    assert error.code == ErrorCode.PARTNER_NOT_ELIGIBLE


# ---- filing: priority flag, automatic acknowledgement --------------------------------------------


@pytest.mark.parametrize(
    ("plan", "ticket_type", "severity", "flagged"),
    [
        ("enterprise-advanced", "issue-report", "", True),  # a plan without severities: filed without one
        ("enterprise-premium", "issue-report", "category-2", True),  # kept by the plan that extends it
        ("enterprise-advanced", "developer-support", "", False),
        ("free", "issue-report", "", False),
    ],
)
async def test_support_by_plan_issue_reports_carry_the_priority_flag(
    ctx, clock, make_customer, make_contract, plan, ticket_type, severity, flagged
):
    customer = await customer_on(make_customer, make_contract, program="support-by-plan", plan=plan)
    filed = await file(ctx, clock, customer, ticket_type, severity, at=NOW)
    row, _, [audit] = await stored(ctx, filed.id)
    assert (row.priority_flag, row.severity) == (flagged, severity)
    assert audit.detail.get("priority_flag", False) is flagged
    # Without a severity there is nothing to time: no SLA clocks.
    assert bool(await clocks_at(ctx, clock, filed, NOW + timedelta(hours=1))) is bool(severity)


async def test_a_plan_without_severities_refuses_one(ctx, clock, make_customer, make_contract):
    customer = await customer_on(make_customer, make_contract, program="support-by-plan", plan="enterprise-advanced")
    error = await refused(ctx, file(ctx, clock, customer, "issue-report", "category-1", at=NOW), ValidationFailed)
    assert error.field == "severity"
    assert "gives no severities here: file without one (not 'category-1')" in error.message


async def test_filing_writes_an_automatic_acknowledgement_that_never_counts(ctx, clock, make_customer, make_contract):
    customer = await customer_on(make_customer, make_contract, program="support-by-plan", plan="enterprise-premium")
    outage = await file(ctx, clock, customer, "api-outage", "category-1", at=NOW)

    row, events, _ = await stored(ctx, outage.id)
    assert row.status == "new"
    assert [(e.position, e.kind, e.automatic, e.actor_kind) for e in events] == [
        (1, "created", False, "system"), (2, "acknowledged", True, "system"),
    ]
    [ack] = await tickets.list_comments(ctx, customer_actor(customer.id), outage.id)
    assert (ack.automatic, ack.internal, ack.author_kind, ack.author_name) == (True, False, "system", "Headless Content Cloud support")
    assert "automatic acknowledgement" in ack.body and str(outage.id) in ack.body

    clocks = await clocks_at(ctx, clock, outage, NOW + timedelta(minutes=30))
    assert (clocks["acknowledge"].met_at, clocks["first_response"].met_at) == (None, None)
    late = await clocks_at(ctx, clock, outage, NOW + timedelta(hours=1, seconds=1))
    assert late["acknowledge"].breached  # the auto-reply did not acknowledge anything

    # A person acknowledging meets the acknowledge target only; the first staff reply meets the first response.
    await move(ctx, clock, outage, "acknowledged", at=NOW + timedelta(minutes=40))
    clocks = await clocks_at(ctx, clock, outage, NOW + timedelta(minutes=50))
    assert (clocks["acknowledge"].met_at, clocks["first_response"].met_at) == (NOW + timedelta(minutes=40), None)
    await say(ctx, clock, outage, "We are on it: the delivery API is being restarted.", at=NOW + timedelta(hours=2))
    clocks = await clocks_at(ctx, clock, outage, NOW + timedelta(hours=3))
    assert (clocks["first_response"].met_at, clocks["first_response"].breached) == (NOW + timedelta(hours=2), False)


async def test_an_internal_note_or_a_customer_comment_is_no_first_response(ctx, clock, customer, ticket):
    await say(ctx, clock, ticket, "Looks like the export worker.", at=NOW + timedelta(minutes=5), internal=True)
    await say(ctx, clock, ticket, "Any news?", at=NOW + timedelta(minutes=6), actor=customer_actor(customer.id))
    fr = (await clocks_at(ctx, clock, ticket, NOW + timedelta(minutes=10)))["first_response"]
    assert fr.met_at is None
    row, events, _ = await stored(ctx, ticket.id)
    assert row.status == "new"
    assert [e.kind for e in events] == ["created", "acknowledged"]


# ---- the lifecycle ---------------------------------------------------------------------------------


async def test_the_full_lifecycle_with_its_events_statuses_audit_and_outbox(ctx, clock, make_customer, make_contract):
    # An S1 incident of premium-availability: 20-minute first response, then an update every 30 minutes (24/7).
    customer = await customer_on(make_customer, make_contract, program="premium-availability", plan="premium-16")
    ticket = await file(ctx, clock, customer, "incident", "s1", at=NOW)
    me = customer_actor(customer.id)
    t = NOW
    steps: list[tuple[str, str]] = []

    async def status() -> str:
        row, _, _ = await stored(ctx, ticket.id)
        return row.status

    await move(ctx, clock, ticket, "acknowledged", at=t + timedelta(minutes=10))
    steps.append(("acknowledged", await status()))
    reply = await say(ctx, clock, ticket, "Which export profile do you use?", at=t + timedelta(minutes=20))
    steps.append(("responded", await status()))
    await move(ctx, clock, ticket, "waiting_on_customer", at=t + timedelta(minutes=21), reason="Please send the export profile.")
    steps.append(("waiting", await status()))

    # Waiting on the customer pauses the update clock (1 of its 30 minutes gone); its reply resumes the ticket.
    clocks = await clocks_at(ctx, clock, ticket, t + timedelta(hours=3))
    assert clocks["first_response"].met_at == t + timedelta(minutes=20)
    update = clocks["update_interval"]
    assert (update.paused, update.breached, update.due_at, update.remaining_seconds) == (True, False, None, 29 * 60)
    await say(ctx, clock, ticket, "Profile 'full-catalogue'.", at=t + timedelta(hours=4), actor=me)
    steps.append(("customer replied", await status()))
    update = (await clocks_at(ctx, clock, ticket, t + timedelta(hours=4)))["update_interval"]
    assert (update.paused, update.due_at) == (False, t + timedelta(hours=4, minutes=29))
    stated = t + timedelta(hours=6)
    await say(ctx, clock, ticket, "Reproduced; a fix is being tested.", at=t + timedelta(hours=4, minutes=20), next_update_at=stated)
    update = (await clocks_at(ctx, clock, ticket, t + timedelta(hours=5)))["update_interval"]
    assert (update.due_at, update.missed_updates, update.breached) == (stated, 0, False)
    await say(ctx, clock, ticket, "Export worker memory raised.", at=t + timedelta(hours=5, minutes=1), internal=True)
    resolved = await move(ctx, clock, ticket, "resolved", at=t + timedelta(hours=6), reason="Fixed in release 4.2.")
    assert resolved.resolved_at == t + timedelta(hours=6)
    steps.append(("resolved", await status()))

    # The customer reopens within the window, staff resolve again, the customer closes.
    await move(ctx, clock, ticket, "in_progress", at=t + timedelta(days=3), actor=me, reason="It stops again.")
    steps.append(("reopened", await status()))
    row, _, _ = await stored(ctx, ticket.id)
    assert row.resolved_at is None
    await move(ctx, clock, ticket, "resolved", at=t + timedelta(days=4))
    await move(ctx, clock, ticket, "closed", at=t + timedelta(days=5), actor=me)
    steps.append(("closed", await status()))

    assert steps == [
        ("acknowledged", "acknowledged"), ("responded", "in_progress"), ("waiting", "waiting_on_customer"),
        ("customer replied", "in_progress"), ("resolved", "resolved"), ("reopened", "in_progress"), ("closed", "closed"),
    ]
    row, events, audits = await stored(ctx, ticket.id)
    assert row.resolved_at == t + timedelta(days=4)
    assert [(e.position, e.kind, e.actor_kind, e.automatic) for e in events] == [
        (1, "created", "system", False),
        (2, "acknowledged", "system", True),
        (3, "acknowledged", "staff", False),
        (4, "responded", "staff", False),
        (5, "waiting_on_customer", "staff", False),
        (6, "resumed", "customer", False),
        (7, "updated", "staff", False),
        (8, "resolved", "staff", False),
        (9, "reopened", "customer", False),
        (10, "resolved", "staff", False),
        (11, "closed", "customer", False),
    ]
    assert events[6].next_update_at == stated
    assert [(a.action, a.actor_kind, a.detail.get("from"), a.detail.get("to"), a.detail.get("event")) for a in audits] == [
        ("ticket.create", "system", None, None, None),
        ("ticket.transition", "staff", "new", "acknowledged", "acknowledged"),
        ("ticket.comment", "staff", "acknowledged", "in_progress", "responded"),
        ("ticket.transition", "staff", "in_progress", "waiting_on_customer", "waiting_on_customer"),
        ("ticket.comment", "customer", "waiting_on_customer", "in_progress", "resumed"),
        ("ticket.comment", "staff", None, None, "updated"),
        ("ticket.comment", "staff", None, None, None),  # the internal note
        ("ticket.transition", "staff", "in_progress", "resolved", "resolved"),
        ("ticket.transition", "customer", "resolved", "in_progress", "reopened"),
        ("ticket.transition", "staff", "in_progress", "resolved", "resolved"),
        ("ticket.transition", "customer", "resolved", "closed", "closed"),
    ]
    assert all(a.on_behalf_of_customer_id == customer.id for a in audits)
    assert audits[7].detail["reason"] == "Fixed in release 4.2."

    # One message per logical event, all to the customer (it has no managing partner).
    sent = await messages(ctx, ticket.id)
    assert [(m.kind, m.dedupe_key) for m in sent] == [
        ("ticket_filed", f"ticket:{ticket.id}:filed"),
        ("staff_reply", f"ticket:{ticket.id}:reply:{reply.id}"),
        ("waiting_on_customer", f"ticket:{ticket.id}:waiting:5"),
        ("staff_reply", sent[3].dedupe_key),
        ("resolved", f"ticket:{ticket.id}:resolved:8"),
        ("resolved", f"ticket:{ticket.id}:resolved:10"),
    ]
    assert {(m.recipient_kind, m.recipient_name, m.customer_id) for m in sent} == {("customer", customer.name, customer.id)}
    assert all(m.sent_at is None and m.attempts == 0 for m in sent)
    assert "Please send the export profile." in sent[2].body
    assert "Fixed in release 4.2." in sent[4].body and "within 14 days" in sent[4].body


async def test_taking_up_a_ticket_records_no_sla_event_and_waiting_pauses_the_first_response(ctx, clock, customer, ticket):
    await move(ctx, clock, ticket, "in_progress", at=NOW + timedelta(minutes=10))
    _, events, [_, audit] = await stored(ctx, ticket.id)
    assert [e.kind for e in events] == ["created", "acknowledged"]
    assert audit.detail == {"from": "new", "to": "in_progress", "event": None, "reason": ""}

    await move(ctx, clock, ticket, "waiting_on_customer", at=NOW + timedelta(minutes=30))
    # 2 business hours from 13:00 Madrid; paused after 30 minutes, past the original 15:00 due instant.
    fr = (await clocks_at(ctx, clock, ticket, NOW + timedelta(hours=2, minutes=30)))["first_response"]
    assert (fr.paused, fr.breached, fr.due_at, fr.elapsed_seconds) == (True, False, None, 1800)
    # Staff may resume it too: the remaining 90 minutes run from then.
    await move(ctx, clock, ticket, "in_progress", at=NOW + timedelta(hours=3))
    fr = (await clocks_at(ctx, clock, ticket, NOW + timedelta(hours=3)))["first_response"]
    assert (fr.paused, fr.due_at) == (False, NOW + timedelta(hours=4, minutes=30))
    _, events, _ = await stored(ctx, ticket.id)
    assert [e.kind for e in events][-2:] == ["waiting_on_customer", "resumed"]


async def test_resolving_stops_the_clocks_and_reopening_restarts_them(ctx, clock, ticket):
    await move(ctx, clock, ticket, "in_progress", at=NOW + timedelta(minutes=10))
    await move(ctx, clock, ticket, "resolved", at=NOW + timedelta(minutes=20))
    fr = (await clocks_at(ctx, clock, ticket, NOW + timedelta(days=1)))["first_response"]
    assert fr.paused and not fr.breached
    await move(ctx, clock, ticket, "in_progress", at=NOW + timedelta(days=1))
    fr = (await clocks_at(ctx, clock, ticket, NOW + timedelta(days=1)))["first_response"]
    assert not fr.paused


@pytest.mark.parametrize("actor_kind", ["customer", "partner", "staff"])
async def test_reopening_is_allowed_up_to_the_end_of_the_window_and_refused_after(ctx, clock, customer, ticket, actor_kind):
    partner = await make_partner(ctx)
    await parties.link_partner(ctx, ADMIN, partner_id=partner.id, customer_id=customer.id, managed=True, production_access=False)
    actor = {"customer": customer_actor(customer.id), "partner": partner_actor(partner), "staff": ENGINEER}[actor_kind]
    await move(ctx, clock, ticket, "in_progress", at=NOW)
    resolved_at = NOW + timedelta(hours=1)
    await move(ctx, clock, ticket, "resolved", at=resolved_at)

    error = await refused(
        ctx, move(ctx, clock, ticket, "in_progress", at=resolved_at + timedelta(days=14, seconds=1), actor=actor),
        ValidationFailed,
    )
    assert error.field == "to"
    assert error.message == (
        "the ticket was resolved on 2026-03-10T13:00:00+00:00 and may be reopened only within 14 days of its "
        "resolution (until 2026-03-24T13:00:00+00:00): file a new ticket instead"
    )
    await move(ctx, clock, ticket, "in_progress", at=resolved_at + timedelta(days=14), actor=actor)
    row, events, _ = await stored(ctx, ticket.id)
    assert (row.status, events[-1].kind, events[-1].actor_kind) == ("in_progress", "reopened", actor.kind)


async def test_the_reopening_window_comes_from_the_settings(ctx, clock, ticket, monkeypatch):
    monkeypatch.setenv("ENTITLE_TICKET_REOPEN_DAYS", "2")
    assert Settings.from_env().ticket_reopen_days == 2
    short = AppContext(db=ctx.db, settings=replace(ctx.settings, ticket_reopen_days=2), clock=clock)
    await move(short, clock, ticket, "in_progress", at=NOW)
    await move(short, clock, ticket, "resolved", at=NOW)
    error = await refused(short, move(short, clock, ticket, "in_progress", at=NOW + timedelta(days=2, seconds=1)), ValidationFailed)
    assert "within 2 days" in error.message
    sent = await messages(ctx, ticket.id)
    assert "within 2 days" in sent[-1].body


async def test_a_ticket_resolved_by_a_recorded_event_reopens_within_the_window_of_that_event(ctx, clock, ticket):
    clock.instant = NOW
    await tickets.record_event(ctx, ENGINEER, ticket.id, "resolved")
    row, _, _ = await stored(ctx, ticket.id)
    assert row.resolved_at == NOW
    await refused(ctx, move(ctx, clock, ticket, "in_progress", at=NOW + timedelta(days=15)), ValidationFailed)


# ---- transitions refused ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "to", "message"),
    [
        ((), "resolved", "a ticket cannot go from 'new' to 'resolved': from 'new' it may go to 'acknowledged', 'in_progress'"),
        ((), "new", "a ticket cannot go from 'new' to 'new': from 'new' it may go to 'acknowledged', 'in_progress'"),
        (("acknowledged",), "waiting_on_customer", "from 'acknowledged' it may go to 'in_progress'"),
        (("in_progress",), "closed", "from 'in_progress' it may go to 'waiting_on_customer', 'resolved'"),
        (("in_progress", "resolved"), "acknowledged", "from 'resolved' it may go to 'in_progress', 'closed'"),
        (
            ("in_progress", "resolved", "closed"), "in_progress",
            "a ticket cannot go from 'closed' to 'in_progress': from 'closed' it may go to nothing, a closed ticket is final",
        ),
    ],
)
async def test_an_illegal_transition_is_refused_naming_from_to_and_the_allowed_targets(ctx, clock, ticket, path, to, message):
    for minute, step in enumerate(path, start=1):
        await move(ctx, clock, ticket, step, at=NOW + timedelta(minutes=minute))
    error = await refused(ctx, move(ctx, clock, ticket, to, at=NOW + timedelta(hours=1)), ValidationFailed)
    assert error.field == "to"
    assert message in error.message
    assert error.details["from_status"] == (path[-1] if path else "new")
    assert error.details["allowed"] == list(tickets.TRANSITIONS[path[-1] if path else "new"])


async def test_an_unknown_status_is_refused(ctx, clock, ticket):
    error = await refused(ctx, move(ctx, clock, ticket, "escalated", at=NOW), ValidationFailed)
    assert error.message == (
        "status 'escalated' is not one of new, acknowledged, in_progress, waiting_on_customer, resolved, closed"
    )


@pytest.mark.parametrize("to", ["acknowledged", "in_progress"])
async def test_the_customer_side_may_not_work_the_ticket(ctx, clock, customer, ticket, to):
    partner = await make_partner(ctx)
    await parties.link_partner(ctx, ADMIN, partner_id=partner.id, customer_id=customer.id, managed=True, production_access=False)
    for actor in (customer_actor(customer.id), partner_actor(partner)):
        error = await refused(ctx, move(ctx, clock, ticket, to, at=NOW, actor=actor), PermissionDenied)
        assert error.message.endswith(f"may only close a resolved ticket or reopen it; moving a ticket from 'new' to {to!r} is for the support team")
    await move(ctx, clock, ticket, "in_progress", at=NOW)
    for target in ("waiting_on_customer", "resolved"):
        await refused(ctx, move(ctx, clock, ticket, target, at=NOW, actor=customer_actor(customer.id)), PermissionDenied)


async def test_a_next_update_is_refused_where_it_means_nothing(ctx, clock, ticket):
    at = NOW + timedelta(minutes=5)
    error = await refused(ctx, move(ctx, clock, ticket, "in_progress", at=at, next_update_at=at + timedelta(hours=1)), ValidationFailed)
    assert (error.field, error.message) == (
        "nextUpdateAt", "a next update cannot be announced when the ticket goes from 'new' to 'in_progress'",
    )
    await refused(ctx, move(ctx, clock, ticket, "acknowledged", at=at, next_update_at=at), ValidationFailed)
    await move(ctx, clock, ticket, "acknowledged", at=at, next_update_at=at + timedelta(hours=1))


async def test_others_may_not_move_a_ticket_they_cannot_see(ctx, clock, ticket, make_customer, make_contract):
    other = await customer_on(make_customer, make_contract)
    error = await refused(ctx, move(ctx, clock, ticket, "acknowledged", at=NOW, actor=customer_actor(other.id)), NotFound)
    assert error.field == "ticketId"
    stranger = await make_partner(ctx)
    await refused(ctx, move(ctx, clock, ticket, "acknowledged", at=NOW, actor=partner_actor(stranger)), NotFound)
    await refused(ctx, tickets.transition_ticket(ctx, ENGINEER, uuid.uuid4(), "acknowledged"), NotFound)
    nobody = Actor(kind="staff", ref="user:nobody", name="No Roles")
    await refused(ctx, move(ctx, clock, ticket, "acknowledged", at=NOW, actor=nobody), PermissionDenied)


@pytest.mark.parametrize("scope", [TokenScope.CUSTOMER, TokenScope.PROVIDER])
async def test_a_read_only_token_may_neither_move_nor_comment(ctx, clock, customer, ticket, scope):
    target = {"customer_id": customer.id} if scope == TokenScope.CUSTOMER else {}
    token, _ = await identity.create_token(ctx, ADMIN, identity.NewToken(unique("token"), scope, TokenAccess.READ, **target))
    actor = identity.actor_for_token(token)
    for call in (move(ctx, clock, ticket, "in_progress", at=NOW, actor=actor), say(ctx, clock, ticket, "hi", at=NOW, actor=actor)):
        error = await refused(ctx, call, PermissionDenied)
        assert "read-only" in error.message


# ---- the conversation ------------------------------------------------------------------------------


async def test_customers_and_partners_never_see_internal_comments(ctx, clock, customer, ticket):
    partner = await make_partner(ctx)
    await parties.link_partner(ctx, ADMIN, partner_id=partner.id, customer_id=customer.id, managed=True, production_access=False)
    await say(ctx, clock, ticket, "Checking the logs now.", at=NOW + timedelta(minutes=1))
    await say(ctx, clock, ticket, "Customer runs an old plugin.", at=NOW + timedelta(minutes=2), internal=True)
    await say(ctx, clock, ticket, "Thanks!", at=NOW + timedelta(minutes=3), actor=partner_actor(partner))

    everything = [(c.author_kind, c.internal, c.automatic, c.body[:20]) for c in await tickets.list_comments(ctx, ENGINEER, ticket.id)]
    assert everything == [
        ("system", False, True, everything[0][3]),
        ("staff", False, False, "Checking the logs no"),
        ("staff", True, False, "Customer runs an old"),
        ("partner", False, False, "Thanks!"),
    ]
    public = [e for e in everything if not e[1]]
    for actor in (customer_actor(customer.id), partner_actor(partner)):
        seen = await tickets.list_comments(ctx, actor, ticket.id)
        assert [(c.author_kind, c.internal, c.automatic, c.body[:20]) for c in seen] == public
    assert [c.body for c in await tickets.list_comments(ctx, ADMIN, ticket.id)][2] == "Customer runs an old plugin."


async def test_comments_of_an_invisible_ticket_are_not_found(ctx, clock, ticket, make_customer, make_contract):
    other = await customer_on(make_customer, make_contract)
    with pytest.raises(NotFound):
        await tickets.list_comments(ctx, customer_actor(other.id), ticket.id)
    await refused(ctx, say(ctx, clock, ticket, "Me too", at=NOW, actor=customer_actor(other.id)), NotFound)


async def test_a_comment_stores_its_author_and_is_audited(ctx, clock, customer, ticket):
    me = customer_actor(customer.id)
    comment = await say(ctx, clock, ticket, "  The export log is attached.  ", at=NOW + timedelta(minutes=3), actor=me)
    assert (comment.author_kind, comment.author_ref, comment.author_name, comment.body, comment.created_at) == (
        "customer", me.ref, "Cora Customer", "The export log is attached.", NOW + timedelta(minutes=3),
    )
    _, _, audits = await stored(ctx, ticket.id)
    assert (audits[-1].action, audits[-1].actor_ref, audits[-1].detail) == (
        "ticket.comment", me.ref, {"comment_id": str(comment.id), "internal": False, "event": None},
    )
    assert [m.kind for m in await messages(ctx, ticket.id)] == ["ticket_filed"]  # nothing sent to its own author


@pytest.mark.parametrize("body", ["", "   ", "x" * 20_001])
async def test_an_empty_or_overlong_comment_is_refused(ctx, clock, ticket, body):
    error = await refused(ctx, say(ctx, clock, ticket, body, at=NOW), ValidationFailed)
    assert (error.field, error.message) == ("body", "a comment must be 1 to 20000 characters")


async def test_the_customer_side_may_not_write_internal_comments_or_announce_updates(ctx, clock, customer, ticket):
    partner = await make_partner(ctx)
    await parties.link_partner(ctx, ADMIN, partner_id=partner.id, customer_id=customer.id, managed=True, production_access=False)
    for actor in (customer_actor(customer.id), partner_actor(partner)):
        error = await refused(ctx, say(ctx, clock, ticket, "psst", at=NOW, actor=actor, internal=True), PermissionDenied)
        assert (error.field, error.message) == (
            "internal", f"{actor.name} may not write internal comments: they are for the provider's staff",
        )
        error = await refused(
            ctx, say(ctx, clock, ticket, "soon", at=NOW, actor=actor, next_update_at=NOW + timedelta(hours=1)), ValidationFailed
        )
        assert error.field == "nextUpdateAt"
    error = await refused(
        ctx, say(ctx, clock, ticket, "note", at=NOW, internal=True, next_update_at=NOW + timedelta(hours=1)), ValidationFailed
    )
    assert error.message == "a next update is announced only with a public reply from the support team"
    await refused(ctx, say(ctx, clock, ticket, "reply", at=NOW, next_update_at=NOW), ValidationFailed)


async def test_a_closed_ticket_takes_no_more_comments(ctx, clock, customer, ticket):
    for step in ("in_progress", "resolved", "closed"):
        await move(ctx, clock, ticket, step, at=NOW)
    for actor in (ENGINEER, customer_actor(customer.id)):
        error = await refused(ctx, say(ctx, clock, ticket, "One more thing", at=NOW, actor=actor), ValidationFailed)
        assert error.message == "the ticket is closed and a closed ticket is final: file a new ticket instead"


async def test_a_staff_reply_settles_the_support_time_in_the_same_transaction(ctx, clock, customer):
    question = await file(ctx, clock, customer, "question", "standard", at=NOW)

    async def deducted() -> int:
        async with ctx.db.read() as session:
            return await session.scalar(
                select(func.coalesce(func.sum(LedgerEntry.quantity), 0)).where(LedgerEntry.ticket_id == question.id)
            )

    await say(ctx, clock, question, "internal only", at=NOW, internal=True)
    await say(ctx, clock, question, "from the customer", at=NOW, actor=customer_actor(customer.id))
    assert await deducted() == 0
    await say(ctx, clock, question, "Here is how to do it.", at=NOW + timedelta(minutes=5))
    first = await deducted()
    assert first > 0  # the conversation is open: the plan's minimum is taken
    await say(ctx, clock, question, "And one more hint.", at=NOW + timedelta(minutes=6))
    assert await deducted() == first  # still one conversation


# ---- the outbox ------------------------------------------------------------------------------------


async def test_messages_about_a_managed_customer_go_to_its_partner(ctx, clock, make_customer, make_contract):
    customer = await customer_on(make_customer, make_contract, email="it@customer.example")
    partner = await make_partner(ctx, email="support@partner.example")
    await parties.link_partner(ctx, ADMIN, partner_id=partner.id, customer_id=customer.id, managed=True, production_access=False)
    # Filed by the customer itself: the answers still go to the partner.
    filed = await file(ctx, clock, customer, at=NOW, actor=customer_actor(customer.id))
    await say(ctx, clock, filed, "Which profile?", at=NOW + timedelta(minutes=1))
    await move(ctx, clock, filed, "waiting_on_customer", at=NOW + timedelta(minutes=2))
    await say(ctx, clock, filed, "full-catalogue", at=NOW + timedelta(minutes=3), actor=customer_actor(customer.id))
    await move(ctx, clock, filed, "resolved", at=NOW + timedelta(minutes=4))

    sent = await messages(ctx, filed.id)
    assert [m.kind for m in sent] == ["ticket_filed", "staff_reply", "waiting_on_customer", "resolved"]
    assert {(m.recipient_kind, m.recipient_name, m.recipient_email, m.customer_id) for m in sent} == {
        ("partner", partner.name, "support@partner.example", customer.id)
    }


async def test_messages_about_a_customer_a_partner_only_works_with_go_to_the_customer(ctx, clock, make_customer, make_contract):
    customer = await customer_on(make_customer, make_contract, email="it@customer.example")
    partner = await make_partner(ctx, email="support@partner.example")
    await parties.link_partner(ctx, ADMIN, partner_id=partner.id, customer_id=customer.id, managed=False, production_access=False)
    filed = await file(ctx, clock, customer, at=NOW, actor=partner_actor(partner))
    await say(ctx, clock, filed, "Which profile?", at=NOW + timedelta(minutes=1))
    sent = await messages(ctx, filed.id)
    assert {(m.recipient_kind, m.recipient_name, m.recipient_email) for m in sent} == {
        ("customer", customer.name, "it@customer.example")
    }
    assert sent[0].subject == "[Catalogue Data Cloud] Request received: Product export stops halfway"
    assert sent[1].subject == "Re: [Catalogue Data Cloud] Product export stops halfway"
    assert sent[1].body == "Sam Support wrote:\n\nWhich profile?"


async def test_one_message_per_logical_event(ctx, clock, ticket):
    async with ctx.db.write() as session:
        row = await session.get(Ticket, ticket.id)
        again = await outbox.queue(
            session, ctx, kind="ticket_filed", customer_id=row.customer_id, ticket_id=row.id,
            dedupe_key=f"ticket:{ticket.id}:filed", subject="again", body="again"
        )
        fresh = await outbox.queue(
            session, ctx, kind="note", customer_id=row.customer_id, ticket_id=row.id,
            dedupe_key=f"ticket:{ticket.id}:note", subject="s" * 400, body="b"
        )
    assert again is None and fresh is not None
    # Both were queued at the same instant: compare regardless of order.
    sent = {m.kind: m for m in await messages(ctx, ticket.id)}
    assert {(k, m.subject[:8]) for k, m in sent.items()} == {("ticket_filed", "[Catalog"), ("note", "ssssssss")}
    assert len(sent["note"].subject) == 300


async def test_a_refused_reply_queues_nothing(ctx, clock, ticket):
    await move(ctx, clock, ticket, "in_progress", at=NOW)
    await move(ctx, clock, ticket, "resolved", at=NOW)
    await move(ctx, clock, ticket, "closed", at=NOW)
    await refused(ctx, say(ctx, clock, ticket, "late reply", at=NOW + timedelta(minutes=1)), ValidationFailed)
    assert sorted(m.kind for m in await messages(ctx, ticket.id)) == ["resolved", "ticket_filed"]


# ---- the stored next due instant (what the staff queue sorts by) ------------------------------------


async def test_the_ticket_keeps_its_next_due_instant_with_every_event(ctx, clock, customer, ticket):
    async def due() -> datetime | None:
        return (await stored(ctx, ticket.id))[0].sla_due_at

    filed = await clocks_at(ctx, clock, ticket, NOW)
    assert await due() == min(c.due_at for c in filed.values() if c.met_at is None and c.due_at is not None)
    # Waiting on the customer pauses the clocks: nothing falls due while it waits.
    await move(ctx, clock, ticket, "in_progress", at=NOW + timedelta(minutes=5))
    await move(ctx, clock, ticket, "waiting_on_customer", at=NOW + timedelta(minutes=10))
    assert await due() is None
    await say(ctx, clock, ticket, "Here are the logs.", at=NOW + timedelta(hours=3), actor=customer_actor(customer.id))
    resumed = await clocks_at(ctx, clock, ticket, NOW + timedelta(hours=3))
    expected = min(c.due_at for c in resumed.values() if c.met_at is None and c.due_at is not None)
    assert await due() == expected and expected > filed["first_response"].due_at  # moved by the pause
    await move(ctx, clock, ticket, "resolved", at=NOW + timedelta(hours=4))
    assert await due() is None

"""Support time deducted from the partner program's yearly hours: the 15-minute minimum once a person
replies, logged time beyond it, incidents exempt, refusal or overage past an empty bucket, corrections
that give minutes back, and a ledger that still reconciles."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select, update

from api.jobs.reconcile import reconcile_ledger
from api.models import AuditEntry, EntitlementBalance, LedgerEntry, LedgerKind, Ticket, TicketComment, TimeEntry
from api.programs.loader import parse_program
from api.services import contracts, deductions, ledger, programs, tickets
from api.services.context import Actor, AppContext
from api.services.errors import (
    ErrorCode,
    InsufficientBalance,
    NotFound,
    PermissionDenied,
    ValidationFailed,
)
from tests.conftest import ADMIN, unique

BUCKET = "support-hours"
ENGINEER = Actor(kind="staff", ref="user:engineer", name="Support engineer", roles=frozenset({"support_engineer"}))


def program_text(code: str, *, deductions_table: str) -> str:
    return f"""
code = "{code}"
name = "Deduction tests"
provider = "Tests"
timezone = "Europe/Madrid"

[plans.flex]
name = "Flex"

[plans.flex.buckets.support-hours]
name = "Support hours"
unit = "hours"
allowance = "contract"
period = "year"
anchor = "contract"

{deductions_table}

[plans.flex.severities.standard]
name = "Standard"
rank = 1

[plans.flex.ticket_types.question]
name = "Question"
category = "question"

[plans.flex.ticket_types.incident]
name = "Incident"
category = "incident"
"""


OVERAGE_RULES = """
[plans.flex.deductions]
bucket = "support-hours"
minimum_minutes_per_conversation = 15
exempt_categories = ["incident"]
when_exhausted = "overage"
"""


@pytest.fixture
def make_partner_contract(make_contract):  # type: ignore[no-untyped-def]
    async def make(minutes: int = 60, **fields):  # type: ignore[no-untyped-def]
        return await make_contract(
            program="partner-support", plan="enterprise", custom_allowances={BUCKET: minutes}, **fields
        )

    return make


@pytest.fixture
def make_flex_contract(ctx, make_contract):  # type: ignore[no-untyped-def]
    """A contract on a program of the test's own, with the deductions table given (or none)."""

    async def make(minutes: int, rules: str = OVERAGE_RULES):  # type: ignore[no-untyped-def]
        code = unique("deduct")
        await programs.load_programs(ctx, ADMIN, [parse_program(program_text(code, deductions_table=rules))])
        return await make_contract(program=code, plan="flex", custom_allowances={BUCKET: minutes})

    return make


async def open_ticket(ctx: AppContext, contract, ticket_type: str = "question", severity: str = "standard") -> Ticket:  # type: ignore[no-untyped-def]
    # Diagnostic types (incidents) need the affected account, the steps followed and the expected result.
    diagnosis = (
        {"affected_account": "acme-prod", "steps_followed": "exported the catalogue", "expected_result": "a file"}
        if ticket_type == "incident"
        else {}
    )
    return await tickets.open_ticket(
        ctx,
        ADMIN,
        tickets.NewTicket(
            customer_id=contract.customer_id, ticket_type=ticket_type, severity=severity, subject="Help", **diagnosis
        ),
    )


async def comment(
    ctx: AppContext,
    ticket: Ticket,
    *,
    author_kind: str = "staff",
    internal: bool = False,
    automatic: bool = False,
    actor: Actor = ENGINEER,
) -> list[LedgerEntry]:
    """A comment written and settled in one write transaction, as the comment service does."""
    async with ctx.db.write() as session:
        row = await session.get(Ticket, ticket.id)
        session.add(
            TicketComment(
                ticket_id=row.id, author_kind=author_kind, author_ref=actor.ref, author_name=actor.name,
                internal=internal, automatic=automatic, body="Here is what to do.", created_at=ctx.now(),
            )
        )
        await session.flush()
        return await deductions.settle_ticket(session, ctx, actor, row, reason=f"reply on ticket {row.id}")


async def balance(ctx: AppContext, contract_id: uuid.UUID) -> tuple[int, int]:
    """(consumed, overage) of the support-hours period containing today."""
    [period] = [p for p in await contracts.entitlements(ctx, ADMIN, contract_id) if p.bucket_code == BUCKET]
    return period.consumed, period.overage


async def ticket_entries(ctx: AppContext, ticket_id: uuid.UUID) -> list[LedgerEntry]:
    async with ctx.db.read() as session:
        return list(
            await session.scalars(
                select(LedgerEntry).where(LedgerEntry.ticket_id == ticket_id).order_by(LedgerEntry.created_at)
            )
        )


async def snapshot(ctx: AppContext, contract_id: uuid.UUID):  # type: ignore[no-untyped-def]
    """Everything a refusal must leave alone."""
    async with ctx.db.read() as session:
        ticket_ids = select(Ticket.id).where(Ticket.contract_id == contract_id)
        return (
            sorted(
                (str(e.id), e.quantity)
                for e in await session.scalars(select(LedgerEntry).where(LedgerEntry.contract_id == contract_id))
            ),
            [
                tuple(row)
                for row in await session.execute(
                    select(EntitlementBalance.period_start, EntitlementBalance.consumed, EntitlementBalance.overage)
                    .where(EntitlementBalance.contract_id == contract_id)
                )
            ],
            await session.scalar(select(func.count()).select_from(TimeEntry).where(TimeEntry.ticket_id.in_(ticket_ids))),
            await session.scalar(select(func.count()).select_from(TicketComment).where(TicketComment.ticket_id.in_(ticket_ids))),
            await session.scalar(
                select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "ticket.time_logged")
            ),
        )


async def no_mismatch(ctx: AppContext, contract_id: uuid.UUID) -> None:
    assert [m for m in await reconcile_ledger(ctx) if m.contract_id == contract_id] == []


# --- the minimum, logged time, exemptions -------------------------------------------------------


async def test_the_first_staff_reply_deducts_the_minimum_and_time_beyond_it(ctx, make_partner_contract):
    contract = await make_partner_contract(60)
    ticket = await open_ticket(ctx, contract)
    [minimum] = await comment(ctx, ticket)
    assert (minimum.kind, minimum.quantity, minimum.bucket_code) == (LedgerKind.CONSUME, 15, BUCKET)
    assert (minimum.ticket_id, minimum.time_entry_id) == (ticket.id, None)
    assert await balance(ctx, contract.id) == (15, 0)
    # A second reply opens nothing new.
    assert await comment(ctx, ticket) == []

    first, posted = await deductions.log_time(ctx, ENGINEER, ticket.id, 10, note="reproduced the export")
    assert posted == []  # still 15 owed
    assert (first.minutes, first.actor_ref, first.work_date) == (10, ENGINEER.ref, date(2026, 3, 10))
    second, posted = await deductions.log_time(ctx, ENGINEER, ticket.id, 10, note="wrote up the fix")
    assert [(e.kind, e.quantity, e.ticket_id, e.time_entry_id) for e in posted] == [
        (LedgerKind.CONSUME, 5, ticket.id, second.id)
    ]
    assert await balance(ctx, contract.id) == (20, 0)
    assert all(e.ticket_id == ticket.id for e in await ticket_entries(ctx, ticket.id))
    await no_mismatch(ctx, contract.id)


async def test_time_logged_before_any_reply_counts_and_the_reply_tops_it_up_to_the_minimum(ctx, make_partner_contract):
    contract = await make_partner_contract(60)
    ticket = await open_ticket(ctx, contract)
    entry, posted = await deductions.log_time(ctx, ENGINEER, ticket.id, 10, note="read the logs")
    assert [(e.quantity, e.time_entry_id) for e in posted] == [(10, entry.id)]
    [top_up] = await comment(ctx, ticket)
    assert (top_up.quantity, top_up.time_entry_id) == (5, None)
    assert await balance(ctx, contract.id) == (15, 0)
    await no_mismatch(ctx, contract.id)


async def test_incidents_are_never_deducted(ctx, make_partner_contract):
    contract = await make_partner_contract(60)
    ticket = await open_ticket(ctx, contract, "incident", "major")
    assert await comment(ctx, ticket) == []
    _, posted = await deductions.log_time(ctx, ENGINEER, ticket.id, 90, note="fixed the outage")
    assert posted == []
    assert await balance(ctx, contract.id) == (0, 0)
    assert await ticket_entries(ctx, ticket.id) == []


@pytest.mark.parametrize(
    "kind",
    [
        {"internal": True},
        {"automatic": True},
        {"author_kind": "customer"},
        {"author_kind": "partner"},
    ],
)
async def test_internal_automatic_or_customer_comments_do_not_open_the_conversation(ctx, make_partner_contract, kind):
    contract = await make_partner_contract(60)
    ticket = await open_ticket(ctx, contract)
    assert await comment(ctx, ticket, **kind) == []
    assert await balance(ctx, contract.id) == (0, 0)
    # The first public reply by a person does.
    assert [e.quantity for e in await comment(ctx, ticket)] == [15]


async def test_a_system_reply_opens_the_conversation(ctx, make_partner_contract):
    contract = await make_partner_contract(60)
    ticket = await open_ticket(ctx, contract)
    assert [e.quantity for e in await comment(ctx, ticket, author_kind="system", actor=ADMIN)] == [15]


async def test_plans_without_deductions_deduct_nothing(ctx, make_flex_contract):
    contract = await make_flex_contract(60, rules="")
    ticket = await open_ticket(ctx, contract)
    assert await comment(ctx, ticket) == []
    _, posted = await deductions.log_time(ctx, ENGINEER, ticket.id, 45, note="work")
    assert posted == []
    assert await balance(ctx, contract.id) == (0, 0)


# --- an empty bucket: refusal or overage --------------------------------------------------------


async def test_the_partner_plan_refuses_work_past_the_allowance_and_writes_nothing(ctx, make_partner_contract):
    contract = await make_partner_contract(20)
    ticket = await open_ticket(ctx, contract)
    await comment(ctx, ticket)
    before = await snapshot(ctx, contract.id)
    with pytest.raises(InsufficientBalance) as refused:
        await deductions.log_time(ctx, ENGINEER, ticket.id, 30, note="long investigation")
    assert (refused.value.code, refused.value.field) == (ErrorCode.INSUFFICIENT_BALANCE, "minutes")
    assert (refused.value.requested, refused.value.remaining) == (15, 5)
    assert "'support-hours'" in refused.value.message
    assert "5 minutes left" in refused.value.message and "needs 15" in refused.value.message
    assert await snapshot(ctx, contract.id) == before
    # What still fits goes through.
    _, posted = await deductions.log_time(ctx, ENGINEER, ticket.id, 20, note="shorter investigation")
    assert [e.quantity for e in posted] == [5]
    assert await balance(ctx, contract.id) == (20, 0)
    await no_mismatch(ctx, contract.id)


async def test_a_reply_refused_for_lack_of_hours_is_not_written(ctx, make_partner_contract):
    contract = await make_partner_contract(10)
    ticket = await open_ticket(ctx, contract)
    before = await snapshot(ctx, contract.id)
    with pytest.raises(InsufficientBalance) as refused:
        await comment(ctx, ticket)
    assert refused.value.field is None
    assert (refused.value.requested, refused.value.remaining) == (15, 10)
    assert await snapshot(ctx, contract.id) == before


async def test_overage_records_work_past_the_allowance(ctx, make_flex_contract):
    contract = await make_flex_contract(20)
    ticket = await open_ticket(ctx, contract)
    await comment(ctx, ticket)
    entry, posted = await deductions.log_time(ctx, ENGINEER, ticket.id, 30, note="migration")
    assert [(e.kind, e.quantity, e.ticket_id, e.time_entry_id) for e in posted] == [
        (LedgerKind.CONSUME, 5, ticket.id, entry.id),
        (LedgerKind.OVERAGE, 10, ticket.id, entry.id),
    ]
    assert await balance(ctx, contract.id) == (20, 10)
    # Once the bucket is empty everything is overage.
    other = await open_ticket(ctx, contract)
    assert [(e.kind, e.quantity) for e in await comment(ctx, other)] == [(LedgerKind.OVERAGE, 15)]
    assert await balance(ctx, contract.id) == (20, 25)
    await no_mismatch(ctx, contract.id)

    # A correction gives back overage first, then consumption, never below the minimum.
    fix, given = await deductions.log_time(ctx, ENGINEER, ticket.id, -25, note="booked twice", corrects_entry_id=entry.id)
    assert [(e.kind, e.quantity, e.time_entry_id) for e in given] == [
        (LedgerKind.OVERAGE, -10, fix.id),
        (LedgerKind.ADJUST, -5, fix.id),
    ]
    assert await balance(ctx, contract.id) == (15, 15)  # this ticket: 15 (its minimum); the other: 15 overage
    await no_mismatch(ctx, contract.id)


async def test_reversing_an_overage_entry_gives_it_back_to_overage(ctx, make_flex_contract):
    contract = await make_flex_contract(10)
    ticket = await open_ticket(ctx, contract)
    consumed, overage = await comment(ctx, ticket)
    assert (consumed.quantity, overage.kind, overage.quantity) == (10, LedgerKind.OVERAGE, 5)
    reversal = await ledger.reverse_entry(ctx, ADMIN, overage.id, reason="goodwill")
    assert (reversal.entry.kind, reversal.entry.quantity, reversal.entry.ticket_id) == (LedgerKind.REVERSE, -5, ticket.id)
    assert (reversal.period.consumed, reversal.period.overage) == (10, 0)
    assert await balance(ctx, contract.id) == (10, 0)
    await no_mismatch(ctx, contract.id)


# --- corrections and reversals -----------------------------------------------------------------


async def test_a_negative_correction_gives_minutes_back(ctx, make_partner_contract):
    contract = await make_partner_contract(60)
    ticket = await open_ticket(ctx, contract)
    await comment(ctx, ticket)
    entry, posted = await deductions.log_time(ctx, ENGINEER, ticket.id, 40, note="deep dive")
    assert [e.quantity for e in posted] == [25]
    fix, given = await deductions.log_time(ctx, ENGINEER, ticket.id, -20, note="half of it was another ticket",
                                           corrects_entry_id=entry.id)
    assert (fix.minutes, fix.corrects_entry_id) == (-20, entry.id)
    assert [(e.kind, e.quantity, e.ticket_id, e.time_entry_id) for e in given] == [
        (LedgerKind.ADJUST, -20, ticket.id, fix.id)
    ]
    assert await balance(ctx, contract.id) == (20, 0)
    # Down to 0 logged: the minimum stays.
    _, given = await deductions.log_time(ctx, ENGINEER, ticket.id, -20, note="none of it", corrects_entry_id=entry.id)
    assert [e.quantity for e in given] == [-5]
    assert await balance(ctx, contract.id) == (15, 0)
    # Nothing is left to correct.
    with pytest.raises(ValidationFailed) as refused:
        await deductions.log_time(ctx, ENGINEER, ticket.id, -1, note="again", corrects_entry_id=entry.id)
    assert refused.value.field == "minutes"
    await no_mismatch(ctx, contract.id)


async def test_reversing_a_deduction_restores_the_balance(ctx, make_partner_contract):
    contract = await make_partner_contract(60)
    ticket = await open_ticket(ctx, contract)
    [minimum] = await comment(ctx, ticket)
    reversal = await ledger.reverse_entry(ctx, ADMIN, minimum.id, reason="waived")
    assert (reversal.entry.quantity, reversal.entry.reverses_entry_id, reversal.entry.ticket_id) == (
        -15, minimum.id, ticket.id
    )
    assert await balance(ctx, contract.id) == (0, 0)
    await no_mismatch(ctx, contract.id)
    # The waiver sticks: more work is deducted on top of it, the waived minutes are not taken again.
    _, taken = await deductions.log_time(ctx, ENGINEER, ticket.id, 25, note="follow-up call")
    assert [e.quantity for e in taken] == [10]
    assert await balance(ctx, contract.id) == (10, 0)
    await no_mismatch(ctx, contract.id)


async def test_every_deduction_is_audited(ctx, make_partner_contract):
    contract = await make_partner_contract(60)
    ticket = await open_ticket(ctx, contract)
    await comment(ctx, ticket)
    entry, _ = await deductions.log_time(ctx, ENGINEER, ticket.id, 25, note="call")
    async with ctx.db.read() as session:
        rows = list(
            await session.scalars(
                select(AuditEntry).where(
                    AuditEntry.target_id.in_([str(e.id) for e in await ticket_entries(ctx, ticket.id)])
                )
            )
        )
        logged = await session.scalar(
            select(AuditEntry).where(AuditEntry.action == "ticket.time_logged", AuditEntry.target_id == str(ticket.id))
        )
    assert sorted(r.action for r in rows) == ["ledger.consume", "ledger.consume"]
    assert all(r.detail["ticket"] == str(ticket.id) for r in rows)
    assert logged.detail["time_entry"] == str(entry.id) and logged.detail["deducted"] == 10
    assert logged.actor_ref == ENGINEER.ref


async def test_concurrent_time_entries_on_one_ticket_deduct_once_each(ctx, make_partner_contract):
    contract = await make_partner_contract(600)
    ticket = await open_ticket(ctx, contract)
    await comment(ctx, ticket)
    await asyncio.gather(
        *(deductions.log_time(ctx, ENGINEER, ticket.id, 10, note=f"part {i}") for i in range(4))
    )
    assert await balance(ctx, contract.id) == (40, 0)
    assert sum(e.quantity for e in await ticket_entries(ctx, ticket.id)) == 40
    await no_mismatch(ctx, contract.id)


# --- log_time refusals -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("minutes", "fields", "error", "field"),
    [
        (0, {}, ValidationFailed, "minutes"),
        (24 * 60 + 1, {}, ValidationFailed, "minutes"),
        (-(24 * 60 + 1), {"corrects": True}, ValidationFailed, "minutes"),
        (10, {"note": "   "}, ValidationFailed, "note"),
        (-5, {}, ValidationFailed, "correctsEntryId"),
        (5, {"corrects": True}, ValidationFailed, "minutes"),
        (-31, {"corrects": True}, ValidationFailed, "minutes"),
        (-5, {"corrects_missing": True}, NotFound, "correctsEntryId"),
        (10, {"work_date": date(2026, 3, 11)}, ValidationFailed, "workDate"),
        (10, {"work_date": date(2026, 3, 9)}, ValidationFailed, "workDate"),
        (10, {"ticket_missing": True}, NotFound, "ticketId"),
        (10, {"actor": "client_manager"}, NotFound, "ticketId"),
        (10, {"actor": "customer"}, PermissionDenied, None),
        (10, {"closed": True}, ValidationFailed, "ticketId"),
    ],
)
async def test_log_time_refusals_write_nothing(ctx, make_partner_contract, minutes, fields, error, field):
    contract = await make_partner_contract(60)
    ticket = await open_ticket(ctx, contract)
    original, _ = await deductions.log_time(ctx, ENGINEER, ticket.id, 30, note="first")
    if fields.get("closed"):
        async with ctx.db.write() as session:
            await session.execute(update(Ticket).where(Ticket.id == ticket.id).values(status="closed"))
    actor = {
        None: ENGINEER,
        "client_manager": Actor(kind="staff", ref="user:cm", name="CM", roles=frozenset({"client_manager"}),
                                user_id=uuid.uuid4()),
        "customer": Actor(kind="customer", ref="c", name="Customer", customer_id=contract.customer_id),
    }[fields.get("actor")]
    corrects = original.id if fields.get("corrects") else uuid.uuid4() if fields.get("corrects_missing") else None
    before = await snapshot(ctx, contract.id)
    with pytest.raises(error) as refused:
        await deductions.log_time(
            ctx, actor, uuid.uuid4() if fields.get("ticket_missing") else ticket.id, minutes,
            note=fields.get("note", "work"), work_date=fields.get("work_date"), corrects_entry_id=corrects,
        )
    assert type(refused.value) is error
    assert refused.value.field == field
    assert await snapshot(ctx, contract.id) == before


async def test_a_correction_must_name_an_original_entry_of_the_same_ticket(ctx, make_partner_contract):
    contract = await make_partner_contract(60)
    one, two = await open_ticket(ctx, contract), await open_ticket(ctx, contract)
    original, _ = await deductions.log_time(ctx, ENGINEER, one.id, 30, note="work")
    fix, _ = await deductions.log_time(ctx, ENGINEER, one.id, -10, note="less", corrects_entry_id=original.id)
    before = await snapshot(ctx, contract.id)
    with pytest.raises(NotFound):
        await deductions.log_time(ctx, ENGINEER, two.id, -5, note="x", corrects_entry_id=original.id)
    with pytest.raises(ValidationFailed) as refused:
        await deductions.log_time(ctx, ENGINEER, one.id, -5, note="x", corrects_entry_id=fix.id)
    assert refused.value.field == "correctsEntryId"
    assert await snapshot(ctx, contract.id) == before


async def test_work_dates_within_the_ticket_life_are_accepted(ctx, clock, make_partner_contract):
    contract = await make_partner_contract(60)
    ticket = await open_ticket(ctx, contract)
    clock.instant = clock.instant + timedelta(days=3)
    entry, _ = await deductions.log_time(ctx, ENGINEER, ticket.id, 5, note="late entry", work_date=date(2026, 3, 10))
    assert entry.work_date == date(2026, 3, 10)


# --- reconciliation ----------------------------------------------------------------------------


async def test_reconcile_names_the_column_that_disagrees(ctx, make_flex_contract):
    contract = await make_flex_contract(10)
    ticket = await open_ticket(ctx, contract)
    await comment(ctx, ticket)  # 10 consumed, 5 overage
    await no_mismatch(ctx, contract.id)
    where = EntitlementBalance.contract_id == contract.id
    async with ctx.db.write() as session:
        await session.execute(update(EntitlementBalance).where(where).values(overage=EntitlementBalance.overage + 1))
    try:
        found = [m for m in await reconcile_ledger(ctx) if m.contract_id == contract.id]
        assert [(m.column, m.balance, m.ledger) for m in found] == [("overage", 6, 5)]
    finally:
        async with ctx.db.write() as session:
            await session.execute(update(EntitlementBalance).where(where).values(overage=EntitlementBalance.overage - 1))
    await no_mismatch(ctx, contract.id)

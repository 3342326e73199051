"""Support time deducted from an hours bucket, per ticket.

What a ticket owes is recomputed from its history each time something changes it: the plan's minimum
once a person on the provider's side has replied publicly (the conversation is open), or the total of
its logged time when that is more; nothing for exempt categories (incidents) or plans without
deductions. `settle_ticket` posts the difference from what the ledger already holds for the ticket, in
the caller's write transaction, so the reply or time entry and its deduction commit, or vanish, together.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import date
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from api.domain.periods import Period
from api.models import LedgerEntry, LedgerKind, Ticket, TicketComment, TimeEntry
from api.programs.schema import Bucket, DeductionRules
from api.services import audit, inputs, ledger, policy
from api.services.context import Actor, AppContext
from api.services.contracts import ContractView, load_contract_view
from api.services.errors import Conflict, ContractInactive, InsufficientBalance, NotFound, ValidationFailed

__all__ = ["MAX_MINUTES_PER_ENTRY", "RESPONDER_KINDS", "log_time", "minutes_owed", "settle_ticket"]

MAX_MINUTES_PER_ENTRY = 24 * 60
# Comment authors whose public, non-automatic reply opens a conversation.
RESPONDER_KINDS = ("staff", "system")


def _rules(view: ContractView) -> DeductionRules | None:
    return view.plan.rules.deductions


def _exempt(view: ContractView, rules: DeductionRules, ticket: Ticket) -> bool:
    offered = view.plan.rules.ticket_types.get(ticket.ticket_type)
    return offered is not None and offered.category in rules.exempt_categories


async def minutes_owed(session: AsyncSession, view: ContractView, ticket: Ticket) -> int:
    """What the plan says the ticket owes now, in minutes (0 when nothing is deducted for it)."""
    rules = _rules(view)
    if rules is None or _exempt(view, rules, ticket):
        return 0
    opened = await session.scalar(
        select(TicketComment.id)
        .where(
            TicketComment.ticket_id == ticket.id,
            TicketComment.author_kind.in_(RESPONDER_KINDS),
            TicketComment.internal.is_(False),
            TicketComment.automatic.is_(False),
        )
        .limit(1)
    )
    logged = await session.scalar(
        select(func.coalesce(func.sum(TimeEntry.minutes), 0)).where(TimeEntry.ticket_id == ticket.id)
    )
    minimum = rules.minimum_minutes_per_conversation if opened is not None else 0
    return max(minimum, int(logged or 0))


async def _deducted(
    session: AsyncSession, ticket: Ticket, bucket_code: str
) -> dict[tuple[str, Period], int]:
    """What the ledger holds for the ticket, net of reversals and give-backs, per balance column and period."""
    reversed_entry = aliased(LedgerEntry)
    column = case(
        (
            (LedgerEntry.kind == LedgerKind.OVERAGE)
            | ((LedgerEntry.kind == LedgerKind.REVERSE) & (reversed_entry.kind == LedgerKind.OVERAGE)),
            "overage",
        ),
        else_="consumed",
    )
    rows = await session.execute(
        select(column, LedgerEntry.period_start, LedgerEntry.period_end, LedgerEntry.quantity)
        .outerjoin(reversed_entry, reversed_entry.id == LedgerEntry.reverses_entry_id)
        .where(LedgerEntry.ticket_id == ticket.id, LedgerEntry.bucket_code == bucket_code)
    )
    held: dict[tuple[str, Period], int] = defaultdict(int)
    for name, start, end, quantity in rows:
        held[(name, Period(0, start, end))] += int(quantity)
    return dict(held)


def _bucket(view: ContractView, rules: DeductionRules) -> Bucket:
    bucket = view.plan.bucket(rules.bucket)
    if bucket is None:  # pragma: no cover - programs are validated when loaded
        raise ValidationFailed(f"plan {view.plan.record.code!r} deducts from a bucket it lacks: {rules.bucket!r}")
    return bucket


async def settle_ticket(
    session: AsyncSession,
    ctx: AppContext,
    actor: Actor,
    ticket: Ticket,
    *,
    reason: str,
    time_entry_id: uuid.UUID | None = None,
) -> list[LedgerEntry]:
    """Bring the ticket's deductions up (or down) to what the plan says it owes, inside the caller's
    write transaction; returns the entries posted (none when nothing changed).

    More owed consumes in the period containing today; past an empty bucket the plan's `when_exhausted`
    refuses (InsufficientBalance: the caller's transaction, and with it the reply or time entry, rolls
    back) or records the rest as overage. Less owed (a correction) gives minutes back to the periods the
    ticket took them from, overage first, then consumption, never below what is still owed."""
    if not reason.strip():
        raise ValidationFailed("a deduction needs a reason", field="reason")
    view = await load_contract_view(session, actor, ticket.contract_id)
    rules = _rules(view)
    if rules is None:
        return []
    # Two settlements of one ticket never interleave: each recomputes from what the other committed.
    await session.execute(select(Ticket.id).where(Ticket.id == ticket.id).with_for_update())
    bucket = _bucket(view, rules)
    owed = await minutes_owed(session, view, ticket)
    held = await _deducted(session, ticket, rules.bucket)
    # A deduction someone reversed was waived on purpose: it is not owed again.
    waived = -int(
        await session.scalar(
            select(func.coalesce(func.sum(LedgerEntry.quantity), 0)).where(
                LedgerEntry.ticket_id == ticket.id,
                LedgerEntry.bucket_code == rules.bucket,
                LedgerEntry.kind == LedgerKind.REVERSE,
            )
        )
        or 0
    )
    difference = owed - waived - sum(held.values())
    if difference > 0:
        return await _take(session, ctx, actor, view, rules, bucket, ticket, difference, reason, time_entry_id)
    if difference < 0:
        return await _give_back(session, ctx, actor, view, rules, ticket, held, -difference, reason, time_entry_id)
    return []


async def _take(
    session: AsyncSession,
    ctx: AppContext,
    actor: Actor,
    view: ContractView,
    rules: DeductionRules,
    bucket: Bucket,
    ticket: Ticket,
    minutes: int,
    reason: str,
    time_entry_id: uuid.UUID | None,
) -> list[LedgerEntry]:
    today = view.today(ctx)
    period = view.period(bucket, today)
    if period is None:
        contract = view.contract
        raise ContractInactive(
            f"contract {contract.reference} is not active on {today} (its term is {contract.effective_date} to "
            f"{contract.end_date}): {minutes} {bucket.ledger_unit} of support on this ticket cannot be deducted",
        )
    balance = await ledger.lock_balance(session, ctx, view, rules.bucket, period)
    from_allowance = min(minutes, balance.remaining)
    beyond = minutes - from_allowance
    if beyond and rules.when_exhausted == "refuse":
        raise InsufficientBalance(
            f"bucket {rules.bucket!r} ({bucket.name}) has {balance.remaining} {bucket.ledger_unit} left for "
            f"{period.start} to {period.end}; this work needs {minutes}",
            requested=minutes,
            remaining=balance.remaining,
            field="minutes" if time_entry_id is not None else None,
        )
    posted = []
    for kind, units in ((LedgerKind.CONSUME, from_allowance), (LedgerKind.OVERAGE, beyond)):
        if units:
            posted.append(
                await _post(session, ctx, actor, view, period, rules, ticket, kind, units, reason, time_entry_id)
            )
    return posted


async def _give_back(
    session: AsyncSession,
    ctx: AppContext,
    actor: Actor,
    view: ContractView,
    rules: DeductionRules,
    ticket: Ticket,
    held: dict[tuple[str, Period], int],
    minutes: int,
    reason: str,
    time_entry_id: uuid.UUID | None,
) -> list[LedgerEntry]:
    """Overage first, then consumption; within each, the latest period first."""
    order = sorted(held.items(), key=lambda item: (item[0][0] != "overage", -item[0][1].start.toordinal()))
    posted = []
    for (column, period), amount in order:
        if minutes <= 0:
            break
        units = min(minutes, amount)
        if units <= 0:
            continue
        kind = LedgerKind.OVERAGE if column == "overage" else LedgerKind.ADJUST
        posted.append(await _post(session, ctx, actor, view, period, rules, ticket, kind, -units, reason, time_entry_id))
        minutes -= units
    return posted


async def _post(
    session: AsyncSession,
    ctx: AppContext,
    actor: Actor,
    view: ContractView,
    period: Period,
    rules: DeductionRules,
    ticket: Ticket,
    kind: LedgerKind,
    units: int,
    reason: str,
    time_entry_id: uuid.UUID | None,
) -> LedgerEntry:
    outcome = await ledger.post_in_session(
        session, ctx, actor, view, period, bucket_code=rules.bucket, units=units, kind=kind, reason=reason,
        on_behalf_of_customer_id=ticket.customer_id, ticket_id=ticket.id, time_entry_id=time_entry_id,
    )
    if outcome is None:
        # The balance row is locked and the amounts come from it and from the ticket's own entries:
        # only a balance out of step with its ledger gets here.
        raise Conflict(
            f"the {rules.bucket!r} balance for {period.start} to {period.end} does not allow moving {units} "
            f"({kind.value}) for ticket {ticket.id}; reconcile the ledger"
        )
    return outcome.entry


async def log_time(
    ctx: AppContext,
    actor: Actor,
    ticket_id: uuid.UUID,
    minutes: int,
    *,
    note: str,
    work_date: date | None = None,
    corrects_entry_id: uuid.UUID | None = None,
) -> tuple[TimeEntry, list[LedgerEntry]]:
    """Record minutes worked on a ticket (or, negative, a correction of an earlier entry) and settle its
    deductions, in one transaction: refused whole when the plan refuses the deduction."""
    policy.require(actor, "ticket.update")
    if isinstance(minutes, bool) or not isinstance(minutes, int):
        raise ValidationFailed(f"minutes must be a whole number, got {minutes!r}", field="minutes")
    if minutes == 0:
        raise ValidationFailed("log at least one minute (or a negative correction)", field="minutes")
    if abs(minutes) > MAX_MINUTES_PER_ENTRY:
        raise ValidationFailed(
            f"one entry holds at most {MAX_MINUTES_PER_ENTRY} minutes (a day), got {minutes}", field="minutes"
        )
    note = inputs.text(ctx, (note or "").strip(), "note")
    if not note:
        raise ValidationFailed("say what the time was spent on", field="note")
    inputs.optional_day(ctx, work_date, "workDate")
    if minutes < 0 and corrects_entry_id is None:
        raise ValidationFailed("a negative entry corrects an earlier one: name it", field="correctsEntryId")
    if minutes > 0 and corrects_entry_id is not None:
        raise ValidationFailed(
            "a correction gives minutes back (negative); log more time as a new entry", field="minutes"
        )

    async with ctx.db.write() as session:
        ticket = await session.scalar(
            policy.visible_tickets(actor).where(Ticket.id == ticket_id).with_for_update()
        )
        if ticket is None:
            raise NotFound("ticket", ticket_id, field="ticketId")
        if ticket.status == "closed":
            raise ValidationFailed(
                f"ticket {ticket.id} is closed and a closed ticket is final: no more time can be logged on it",
                field="ticketId",
            )
        view = await load_contract_view(session, actor, ticket.contract_id)
        today = view.today(ctx)
        day = work_date or today
        if day > today:
            raise ValidationFailed(f"work date {day} is in the future (today is {today})", field="workDate")
        filed = ticket.created_at.astimezone(ZoneInfo(view.plan.program.timezone)).date()
        if day < filed:
            raise ValidationFailed(f"work date {day} is before the ticket was filed ({filed})", field="workDate")
        if corrects_entry_id is not None:
            await _check_correction(session, ticket, corrects_entry_id, minutes)
        entry = TimeEntry(
            ticket_id=ticket.id,
            actor_ref=actor.ref,
            actor_name=actor.name,
            minutes=minutes,
            note=note,
            work_date=day,
            corrects_entry_id=corrects_entry_id,
            created_at=ctx.now(),
        )
        session.add(entry)
        await session.flush()
        what = "correction" if minutes < 0 else "time"
        posted = await settle_ticket(
            session, ctx, actor, ticket, reason=f"{what} logged on ticket {ticket.id}: {note}",
            time_entry_id=entry.id,
        )
        await audit.record(
            session, ctx, actor, "ticket.time_logged", target_type="ticket", target_id=ticket.id,
            on_behalf_of_customer_id=ticket.customer_id,
            detail={
                "time_entry": str(entry.id),
                "minutes": minutes,
                "work_date": day.isoformat(),
                "corrects": str(corrects_entry_id) if corrects_entry_id else None,
                "deducted": sum(e.quantity for e in posted),
            },
        )
        return entry, posted


async def _check_correction(session: AsyncSession, ticket: Ticket, corrects_entry_id: uuid.UUID, minutes: int) -> None:
    original = await session.get(TimeEntry, corrects_entry_id)
    if original is None or original.ticket_id != ticket.id:
        raise NotFound("time entry", corrects_entry_id, field="correctsEntryId")
    if original.corrects_entry_id is not None or original.minutes < 0:
        raise ValidationFailed("a correction names the original entry, not another correction", field="correctsEntryId")
    corrected = await session.scalar(
        select(func.coalesce(func.sum(TimeEntry.minutes), 0)).where(TimeEntry.corrects_entry_id == original.id)
    )
    left = original.minutes + int(corrected or 0)
    if -minutes > left:
        raise ValidationFailed(
            f"the entry corrected has {left} minutes left to correct; {-minutes} asked", field="minutes"
        )

"""Tickets as far as the SLA clocks need them: opening one, recording what happens to it, and the
clocks computed from its event history; plus the open windows of a program's support calendars."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.domain.calendars import compile_calendar
from api.domain.sla import EVENT_KINDS, TargetClock, TicketEvent, sla_clocks
from api.models import Contract, PlanRecord, ProgramRecord, Ticket, TicketEventRecord
from api.programs.schema import Plan
from api.services import access, audit, policy
from api.services.context import Actor, AppContext
from api.services.errors import NotFound, ValidationFailed
from api.services.programs import PlanView, get_program, plan_view, program_model

__all__ = [
    "MAX_WINDOW_DAYS",
    "NewTicket",
    "TicketView",
    "calendar_windows",
    "get_tickets",
    "open_ticket",
    "record_event",
    "sla_for_tickets",
]

MAX_WINDOW_DAYS = 366
# What each event leaves the ticket's status at (issue 5 builds the full lifecycle on these events).
_STATUS_AFTER = {
    "acknowledged": "acknowledged",
    "responded": "in_progress",
    "updated": "in_progress",
    "waiting_on_customer": "waiting_on_customer",
    "resumed": "in_progress",
    "resolved": "resolved",
    "reopened": "in_progress",
    "closed": "closed",
}


@dataclass(frozen=True)
class NewTicket:
    customer_id: uuid.UUID
    ticket_type: str
    severity: str
    subject: str


@dataclass(frozen=True)
class TicketView:
    ticket: Ticket
    events: list[TicketEventRecord]
    plan: PlanView


def _check_severity(rules: Plan, ticket_type: str | None, severity: str) -> None:
    allowed = list(rules.severities)
    offered = rules.ticket_types.get(ticket_type) if ticket_type is not None else None
    if offered is not None and offered.severities is not None:
        allowed = list(offered.severities)
    if severity not in allowed:
        raise ValidationFailed(
            f"severity {severity!r} is not one the plan {rules.name!r} offers here "
            f"(it has: {', '.join(allowed) or 'none'})",
            field="severity",
        )


def _plan_in_force(view: TicketView) -> str:
    """The plan the ticket's clocks run on: that of its latest "created" / "plan_changed" event."""
    code = view.plan.record.code
    for event in view.events:
        if event.kind in ("created", "plan_changed") and event.plan:
            code = event.plan
    return code


async def open_ticket(ctx: AppContext, actor: Actor, new: NewTicket) -> Ticket:
    policy.require(actor, "ticket.create")
    if not new.subject.strip() or len(new.subject) > 300:
        raise ValidationFailed("subject must be 1 to 300 characters", field="subject")
    decision = await access.check_filing(ctx, actor, new.customer_id, new.ticket_type)
    _check_severity(decision.plan.rules, new.ticket_type, new.severity)
    now = ctx.now()
    async with ctx.db.write() as session:
        ticket = Ticket(
            customer_id=new.customer_id,
            contract_id=decision.contract_id,
            ticket_type=new.ticket_type,
            severity=new.severity,
            status="new",
            subject=new.subject.strip(),
            filed_by_kind=actor.kind,
            filed_by_ref=actor.ref,
            via_partner_id=actor.partner_id,
            created_at=now,
        )
        session.add(ticket)
        await session.flush()
        session.add(
            TicketEventRecord(
                ticket_id=ticket.id, position=1, kind="created", at=now, actor_kind=actor.kind,
                actor_ref=actor.ref, severity=new.severity, plan=decision.plan.record.code,
            )
        )
        await audit.record(
            session, ctx, actor, "ticket.create", target_type="ticket", target_id=ticket.id,
            on_behalf_of_customer_id=new.customer_id,
            detail={"type": new.ticket_type, "severity": new.severity},
        )
        return ticket


async def record_event(
    ctx: AppContext,
    actor: Actor,
    ticket_id: uuid.UUID,
    kind: str,
    *,
    severity: str | None = None,
    plan: str | None = None,
    automatic: bool = False,
    next_update_at: datetime | None = None,
) -> TicketEventRecord:
    """Record something that happened to a ticket, now. The SLA clocks follow from the history."""
    policy.require(actor, "ticket.update")
    if kind not in EVENT_KINDS or kind == "created":
        raise ValidationFailed(
            f"event kind {kind!r} is not one of {', '.join(k for k in EVENT_KINDS if k != 'created')}", field="kind"
        )
    now = ctx.now()
    if next_update_at is not None and next_update_at.utcoffset() is None:
        raise ValidationFailed("the next update must be given with its time zone", field="nextUpdateAt")
    if next_update_at is not None and next_update_at <= now:
        raise ValidationFailed("the next update must be announced for a later time", field="nextUpdateAt")
    async with ctx.db.write() as session:
        # Events of one ticket are numbered in order: concurrent writers queue on the ticket's row.
        await session.execute(select(Ticket.id).where(Ticket.id == ticket_id).with_for_update())
        view = await _ticket_view(session, actor, ticket_id)
        ticket = view.ticket
        program = view.plan.program
        if kind == "severity_changed":
            if severity is None:
                raise ValidationFailed("a severity change names the new severity", field="severity")
            _check_severity(program.plans[_plan_in_force(view)], ticket.ticket_type, severity)
            ticket.severity = severity
        if kind == "plan_changed":
            if plan is None or plan not in program.plans:
                raise ValidationFailed(f"plan {plan!r} is not in program {program.code!r}", field="plan")
            # The clocks replay with the new plan and this severity (or the current one): it must exist there.
            _check_severity(program.plans[plan], ticket.ticket_type, severity or ticket.severity)
            ticket.severity = severity or ticket.severity
        if kind in _STATUS_AFTER:
            ticket.status = _STATUS_AFTER[kind]
        event = TicketEventRecord(
            ticket_id=ticket.id, position=len(view.events) + 1, kind=kind, at=now, actor_kind=actor.kind,
            actor_ref=actor.ref,
            severity=severity, plan=plan, automatic=automatic, next_update_at=next_update_at,
        )
        session.add(event)
        await session.flush()
        await audit.record(
            session, ctx, actor, f"ticket.{kind}", target_type="ticket", target_id=ticket.id,
            on_behalf_of_customer_id=ticket.customer_id,
        )
        return event


async def _ticket_views(session: AsyncSession, actor: Actor, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, TicketView]:
    rows = await session.execute(
        policy.visible_tickets(actor)
        .add_columns(PlanRecord, ProgramRecord)
        .join(Contract, Contract.id == Ticket.contract_id)
        .join(PlanRecord, PlanRecord.id == Contract.plan_id)
        .join(ProgramRecord, ProgramRecord.id == PlanRecord.program_id)
        .where(Ticket.id.in_(set(ids)))
    )
    found = {ticket.id: (ticket, plan_view(plan, program)) for ticket, plan, program in rows}
    events: dict[uuid.UUID, list[TicketEventRecord]] = {ident: [] for ident in found}
    if found:
        for event in await session.scalars(
            select(TicketEventRecord)
            .where(TicketEventRecord.ticket_id.in_(list(found)))
            .order_by(TicketEventRecord.ticket_id, TicketEventRecord.at, TicketEventRecord.position)
        ):
            events[event.ticket_id].append(event)
    return {ident: TicketView(ticket, events[ident], plan) for ident, (ticket, plan) in found.items()}


async def _ticket_view(session: AsyncSession, actor: Actor, ticket_id: uuid.UUID) -> TicketView:
    view = (await _ticket_views(session, actor, [ticket_id])).get(ticket_id)
    if view is None:
        raise NotFound("ticket", ticket_id, field="ticketId")
    return view


async def get_tickets(ctx: AppContext, actor: Actor, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, TicketView]:
    policy.require(actor, "ticket.read")
    async with ctx.db.read() as session:
        return await _ticket_views(session, actor, ids)


def _domain_events(records: Sequence[TicketEventRecord]) -> list[TicketEvent]:
    return [
        TicketEvent(
            at=r.at, kind=r.kind, severity=r.severity, plan=r.plan, automatic=r.automatic,
            next_update_at=r.next_update_at,
        )
        for r in records
    ]


async def sla_for_tickets(
    ctx: AppContext, actor: Actor, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[TargetClock]]:
    """Every SLA clock of each ticket, as of now, replayed from its event history."""
    views = await get_tickets(ctx, actor, ids)
    now = ctx.now()
    share = ctx.settings.sla_at_risk_share
    return {
        ident: sla_clocks(_domain_events(view.events), view.plan.program, now, at_risk_share=share)
        for ident, view in views.items()
    }


async def calendar_windows(
    ctx: AppContext, actor: Actor, program_code: str, calendar_code: str, start: date, end: date
) -> list[tuple[datetime, datetime]]:
    """The open windows of a program's calendar from the start of `start` to the end of `end`, local."""
    policy.require(actor, "calendar.read")
    if end < start:
        raise ValidationFailed(f"the range ends ({end}) before it starts ({start})", field="to")
    if (end - start).days >= MAX_WINDOW_DAYS:
        raise ValidationFailed(f"ask for at most {MAX_WINDOW_DAYS} days at a time", field="to")
    record, _ = await get_program(ctx, actor, program_code)
    spec = program_model(record).calendars.get(calendar_code)
    if spec is None:
        known = ", ".join(program_model(record).calendars) or "none"
        raise NotFound("calendar", f"{program_code}/{calendar_code} (the program has: {known})", field="calendar")
    zone = ZoneInfo(spec.timezone)
    first = datetime.combine(start, time(0), zone)
    last = datetime.combine(end + timedelta(days=1), time(0), zone)
    return compile_calendar(spec).open_windows(first, last)

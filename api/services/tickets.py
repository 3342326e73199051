"""Tickets: filing one (access, severity, scope and diagnosis rules of the plan), its lifecycle
(new → acknowledged → in_progress ⇄ waiting_on_customer → resolved → closed, reopening within a window),
its conversation, the SLA events each step records and the clocks computed from them, the e-mails each
step queues; plus the open windows of a program's support calendars."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.domain.calendars import compile_calendar
from api.domain.sla import EVENT_KINDS, TargetClock, TicketEvent, sla_clocks
from api.models import (
    Contract,
    LedgerEntry,
    PlanRecord,
    ProgramRecord,
    Ticket,
    TicketComment,
    TicketEventRecord,
    TimeEntry,
)
from api.programs.schema import Plan, Program, TicketType
from api.services import access, audit, inputs, outbox, policy, webhooks
from api.services.context import Actor, AppContext
from api.services.deductions import settle_ticket
from api.services.errors import NotFound, OutOfScope, PermissionDenied, ValidationFailed
from api.services.paging import check_first, encode_cursor, older_than
from api.services.programs import WITHOUT_DOCUMENT, PlanView, get_program, parse_documents, plan_view, program_model

__all__ = [
    "DIAGNOSIS_FIELDS",
    "next_due",
    "TicketRecord",
    "ticket_records",
    "MAX_WINDOW_DAYS",
    "STATUSES",
    "TRANSITIONS",
    "NewTicket",
    "TicketPage",
    "TicketView",
    "add_comment",
    "allowed_transitions",
    "calendar_windows",
    "get_tickets",
    "last_comments",
    "list_comments",
    "list_tickets",
    "open_ticket",
    "record_event",
    "sla_for_tickets",
    "sla_of_views",
    "ticket_cursor",
    "ticket_clocks",
    "transition_ticket",
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


STATUSES = ("new", "acknowledged", "in_progress", "waiting_on_customer", "resolved", "closed")
# Where a ticket may go from each status. resolved → in_progress is a reopening; closed is final.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "new": ("acknowledged", "in_progress"),
    "acknowledged": ("in_progress",),
    "in_progress": ("waiting_on_customer", "resolved"),
    "waiting_on_customer": ("in_progress", "resolved"),
    "resolved": ("in_progress", "closed"),
    "closed": (),
}
# The customer (or its partner) closes a resolved ticket or reopens it; staff do everything else.
_CUSTOMER_TRANSITIONS = frozenset({("resolved", "closed"), ("resolved", "in_progress")})
_PARTICIPANTS = ("customer", "partner")
# The system's own author / actor for what it writes by itself (the automatic acknowledgement).
_SYSTEM_KIND, _SYSTEM_REF = "system", "system:entitle"
# What a diagnostic ticket type needs: (attribute, API field name, words for people).
DIAGNOSIS_FIELDS = (
    ("affected_account", "affectedAccount", "the affected account"),
    ("steps_followed", "stepsFollowed", "the steps followed"),
    ("expected_result", "expectedResult", "the expected result"),
)


@dataclass(frozen=True)
class NewTicket:
    customer_id: uuid.UUID
    ticket_type: str
    severity: str
    subject: str
    description: str = ""
    affected_account: str | None = None
    steps_followed: str | None = None
    expected_result: str | None = None
    # An out-of-scope / out-of-support item code the request is about, when the filer names one.
    scope_item: str | None = None


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
    if not allowed:
        # Basic plans (and best-effort types) rank nothing: such a ticket has no severity, and no SLA.
        if severity:
            raise ValidationFailed(
                f"the plan {rules.name!r} gives no severities here: file without one (not {severity!r})",
                field="severity",
            )
        return
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


def _has_sla(view: TicketView) -> bool:
    """Whether the severity in force is one of the plan in force: a ticket without one has no clocks."""
    severity = view.ticket.severity
    for event in view.events:
        if event.kind in ("created", "severity_changed", "plan_changed") and event.severity:
            severity = event.severity
    plan = view.plan.program.plans.get(_plan_in_force(view))
    return plan is not None and severity in plan.severities


def _optional_text(ctx: AppContext, value: str | None, field: str) -> str | None:
    value = (value or "").strip() or None
    return None if value is None else inputs.text(ctx, value, field)


def _check_scope(program: Program, rules: Plan, item: str | None) -> None:
    """A request about something the plan, its program or the partner program lists as out of scope or
    out of support is refused, with that list's own wording."""
    if item is None:
        return
    partner_list = program.partners.out_of_scope if program.partners is not None else ()
    lists = (
        ("out of scope", rules.out_of_scope),
        ("out of support", rules.out_of_support),
        ("out of scope", program.out_of_scope),
        ("out of support", program.out_of_support),
        ("out of scope", partner_list),
    )
    for label, entries in lists:
        for entry in entries:
            if entry.code == item:
                raise OutOfScope(
                    f"{entry.code!r} is {label} for {program.name} ({rules.name}): {entry.text}",
                    field="scopeItem", item=entry.code, text=entry.text, list=label.replace(" ", "_"),
                )


def _check_diagnosis(offered: TicketType, new: NewTicket) -> None:
    """Diagnostic work needs the affected account, the steps followed and the expected result."""
    if not offered.needs_diagnosis:
        return
    missing = [(field, words) for attr, field, words in DIAGNOSIS_FIELDS if not (getattr(new, attr) or "").strip()]
    if missing:
        raise ValidationFailed(
            f"{offered.name} needs {', '.join(words for _, words in missing)} so the behaviour can be reproduced "
            f"(missing: {', '.join(field for field, _ in missing)})",
            field=missing[0][0], missing=[field for field, _ in missing],
        )


def _event(view: TicketView, actor_kind: str, actor_ref: str, kind: str, at: datetime, **fields: object) -> TicketEventRecord:
    """The ticket's next event; the caller holds the ticket's row lock, so positions never collide. The
    ticket's next SLA due instant follows from its history with this event."""
    record = TicketEventRecord(
        ticket_id=view.ticket.id, position=len(view.events) + 1, kind=kind, at=at, actor_kind=actor_kind,
        actor_ref=actor_ref, **fields,
    )
    view.events.append(record)
    view.ticket.sla_due_at = next_due(view, at)
    return record


def next_due(view: TicketView, at: datetime) -> datetime | None:
    """The earliest instant a target not yet met falls due, as the clocks stand at `at`; None if none runs."""
    dues = [c.due_at for c in _sla_of(view, at, Decimal(1)) if c.met_at is None and c.due_at is not None]
    return min(dues) if dues else None


def _check_next_update(ctx: AppContext, now: datetime, next_update_at: datetime | None) -> None:
    inputs.optional_instant(ctx, next_update_at, "nextUpdateAt")
    if next_update_at is not None and next_update_at.utcoffset() is None:
        raise ValidationFailed("the next update must be given with its time zone", field="nextUpdateAt")
    if next_update_at is not None and next_update_at <= now:
        raise ValidationFailed("the next update must be announced for a later time", field="nextUpdateAt")


def _acknowledgement(program: Program, ticket: Ticket) -> str:
    return (
        f"Thank you: {program.provider} support has received your request \"{ticket.subject}\" "
        f"(ticket {ticket.id}). This is an automatic acknowledgement; a member of the support team will reply."
    )


async def open_ticket(ctx: AppContext, actor: Actor, new: NewTicket) -> Ticket:
    """File a ticket: the plan must offer its type and severity, the request must not be about something
    the terms exclude, and diagnostic types need their three details. Writes the ticket, its "created"
    event, an automatic acknowledgement (comment and automatic "acknowledged" event, which never counts
    as a response), the audit row and the "ticket_filed" e-mail."""
    policy.require(actor, "ticket.create")
    if not new.subject.strip() or len(new.subject) > 300:
        raise ValidationFailed("subject must be 1 to 300 characters", field="subject")
    inputs.text(ctx, new.subject.strip(), "subject")
    for value, name in ((new.ticket_type, "ticketType"), (new.severity, "severity")):
        inputs.text(ctx, value, name)
    description = _optional_text(ctx, new.description, "description") or ""
    affected_account = _optional_text(ctx, new.affected_account, "affectedAccount")
    steps_followed = _optional_text(ctx, new.steps_followed, "stepsFollowed")
    expected_result = _optional_text(ctx, new.expected_result, "expectedResult")
    scope_item = _optional_text(ctx, new.scope_item, "scopeItem")
    decision = await access.check_filing(ctx, actor, new.customer_id, new.ticket_type)
    rules, program = decision.plan.rules, decision.plan.program
    _check_severity(rules, new.ticket_type, new.severity)
    _check_scope(program, rules, scope_item)
    _check_diagnosis(decision.ticket_type, new)
    now = ctx.now()
    async with ctx.db.write() as session:
        ticket = Ticket(
            customer_id=new.customer_id,
            contract_id=decision.contract_id,
            ticket_type=new.ticket_type,
            severity=new.severity,
            status="new",
            subject=new.subject.strip(),
            description=description,
            affected_account=affected_account,
            steps_followed=steps_followed,
            expected_result=expected_result,
            priority_flag=decision.ticket_type.priority_flag,
            filed_by_kind=actor.kind,
            filed_by_ref=actor.ref,
            via_partner_id=actor.partner_id,
            created_at=now,
        )
        session.add(ticket)
        await session.flush()
        view = TicketView(ticket, [], decision.plan)
        session.add(
            _event(view, actor.kind, actor.ref, "created", now, severity=new.severity, plan=decision.plan.record.code)
        )
        # The auto-reply: it tells the filer the request arrived, and counts for no SLA target.
        acknowledgement = _acknowledgement(program, ticket)
        session.add(
            TicketComment(
                ticket_id=ticket.id, author_kind=_SYSTEM_KIND, author_ref=_SYSTEM_REF,
                author_name=f"{program.provider} support", internal=False, automatic=True, body=acknowledgement,
                created_at=now,
            )
        )
        session.add(_event(view, _SYSTEM_KIND, _SYSTEM_REF, "acknowledged", now, automatic=True))
        await session.flush()
        detail: dict[str, object] = {"type": new.ticket_type, "severity": new.severity}
        if ticket.priority_flag:
            detail["priority_flag"] = True
        if scope_item is not None:
            detail["scope_item"] = scope_item
        await audit.record(
            session, ctx, actor, "ticket.create", target_type="ticket", target_id=ticket.id,
            on_behalf_of_customer_id=new.customer_id, detail=detail,
        )
        await outbox.queue(
            session, ctx, kind="ticket_filed", customer_id=ticket.customer_id, ticket_id=ticket.id,
            dedupe_key=f"ticket:{ticket.id}:filed",
            subject=f"[{program.provider}] Request received: {ticket.subject}",
            body=f"{acknowledgement}\n\nType: {decision.ticket_type.name}\nSeverity: {new.severity}\n\n{description}".rstrip(),
        )
        await webhooks.emit(session, ctx, "ticket.filed", ticket.customer_id, webhooks.ticket_data(ticket))
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
    _check_next_update(ctx, now, next_update_at)
    async with ctx.db.write() as session:
        view = await _locked_view(session, actor, ticket_id)
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
        if kind == "resolved":
            ticket.resolved_at = now
        elif kind == "reopened":
            ticket.resolved_at = None
        event = _event(
            view, actor.kind, actor.ref, kind, now,
            severity=severity, plan=plan, automatic=automatic, next_update_at=next_update_at,
        )
        session.add(event)
        await session.flush()
        await audit.record(
            session, ctx, actor, f"ticket.{kind}", target_type="ticket", target_id=ticket.id,
            on_behalf_of_customer_id=ticket.customer_id,
        )
        await webhooks.emit(
            session, ctx, "ticket.updated", ticket.customer_id,
            webhooks.ticket_data(ticket, event=kind, severity=severity, plan=plan, next_update_at=next_update_at),
        )
        return event


def allowed_transitions(actor: Actor, status: str) -> tuple[str, ...]:
    """The statuses `actor` may move a ticket in `status` to (what `transition_ticket` accepts from it)."""
    if actor.kind in _PARTICIPANTS:
        if not policy.may(actor, "ticket.participate"):
            return ()
        return tuple(to for to in TRANSITIONS.get(status, ()) if (status, to) in _CUSTOMER_TRANSITIONS)
    return TRANSITIONS.get(status, ()) if policy.may(actor, "ticket.update") else ()


def _require_participant(actor: Actor) -> None:
    """Staff work on tickets; the customer and its partners take part in their own (which tickets those
    are is `policy.visible_tickets`)."""
    policy.require(actor, "ticket.participate" if actor.kind in _PARTICIPANTS else "ticket.update")


async def _locked_view(session: AsyncSession, actor: Actor, ticket_id: uuid.UUID) -> TicketView:
    # Events of one ticket are numbered in order: concurrent writers queue on the ticket's row.
    await session.execute(select(Ticket.id).where(Ticket.id == ticket_id).with_for_update())
    return await _ticket_view(session, actor, ticket_id)


def _transition_event(current: str, to: str) -> str | None:
    """The SLA event a status change records. Taking up a new or acknowledged ticket records none: it
    tells the customer nothing, so it neither acknowledges nor responds."""
    if to == "in_progress":
        return {"waiting_on_customer": "resumed", "resolved": "reopened"}.get(current)
    return to


def _resolved_since(view: TicketView) -> datetime:
    if view.ticket.resolved_at is not None:
        return view.ticket.resolved_at
    resolved = [e.at for e in view.events if e.kind == "resolved"]
    return resolved[-1] if resolved else view.ticket.created_at


async def transition_ticket(
    ctx: AppContext,
    actor: Actor,
    ticket_id: uuid.UUID,
    to: str,
    *,
    reason: str = "",
    next_update_at: datetime | None = None,
) -> Ticket:
    """Move a ticket to status `to` along TRANSITIONS, recording the matching SLA event and an audit row;
    waiting on the customer and resolved each e-mail the customer's correspondent. Staff make every move;
    the customer and its partners may close a resolved ticket, or reopen it within
    `Settings.ticket_reopen_days` of its resolution."""
    _require_participant(actor)
    inputs.text(ctx, to, "to")
    if to not in STATUSES:
        raise ValidationFailed(f"status {to!r} is not one of {', '.join(STATUSES)}", field="to")
    reason = _optional_text(ctx, reason, "reason") or ""
    now = ctx.now()
    _check_next_update(ctx, now, next_update_at)
    async with ctx.db.write() as session:
        view = await _locked_view(session, actor, ticket_id)
        ticket = view.ticket
        current = ticket.status
        allowed = TRANSITIONS.get(current, ())
        if to not in allowed:
            raise ValidationFailed(
                f"a ticket cannot go from {current!r} to {to!r}: from {current!r} it may go to "
                + (", ".join(repr(a) for a in allowed) if allowed else "nothing, a closed ticket is final"),
                field="to", from_status=current, to_status=to, allowed=list(allowed),
            )
        if actor.kind in _PARTICIPANTS and (current, to) not in _CUSTOMER_TRANSITIONS:
            raise PermissionDenied(
                f"{actor.name} may only close a resolved ticket or reopen it; moving a ticket from {current!r} "
                f"to {to!r} is for the support team",
                field="to",
            )
        kind = _transition_event(current, to)
        if kind == "reopened":
            resolved_at = _resolved_since(view)
            days = ctx.settings.ticket_reopen_days
            deadline = resolved_at + timedelta(days=days)
            if now > deadline:
                raise ValidationFailed(
                    f"the ticket was resolved on {resolved_at.isoformat()} and may be reopened only within {days} "
                    f"days of its resolution (until {deadline.isoformat()}): file a new ticket instead",
                    field="to", resolved_at=resolved_at.isoformat(), reopen_until=deadline.isoformat(),
                )
        if next_update_at is not None and (kind is None or to in ("resolved", "closed")):
            raise ValidationFailed(
                f"a next update cannot be announced when the ticket goes from {current!r} to {to!r}",
                field="nextUpdateAt",
            )
        ticket.status = to
        if to == "resolved":
            ticket.resolved_at = now
        elif kind == "reopened":
            ticket.resolved_at = None
        event = None
        if kind is not None:
            event = _event(view, actor.kind, actor.ref, kind, now, next_update_at=next_update_at)
            session.add(event)
        await session.flush()
        await audit.record(
            session, ctx, actor, "ticket.transition", target_type="ticket", target_id=ticket.id,
            on_behalf_of_customer_id=ticket.customer_id,
            detail={"from": current, "to": to, "event": kind, "reason": reason},
        )
        await webhooks.emit(
            session, ctx, "ticket.transitioned", ticket.customer_id,
            webhooks.ticket_data(ticket, **{"from": current, "to": to, "event": kind, "reason": reason}),
        )
        provider = view.plan.program.provider
        if to == "waiting_on_customer" and event is not None:
            await outbox.queue(
                session, ctx, kind="waiting_on_customer", customer_id=ticket.customer_id, ticket_id=ticket.id,
                dedupe_key=f"ticket:{ticket.id}:waiting:{event.position}",
                subject=f"[{provider}] Waiting for your reply: {ticket.subject}",
                body=(reason or "The support team needs more information from you to go on with this request.")
                + f"\n\nReply on ticket {ticket.id} and the work resumes.",
            )
        if to == "resolved" and event is not None:
            await outbox.queue(
                session, ctx, kind="resolved", customer_id=ticket.customer_id, ticket_id=ticket.id,
                dedupe_key=f"ticket:{ticket.id}:resolved:{event.position}",
                subject=f"[{provider}] Resolved: {ticket.subject}",
                body=(reason or "The support team has resolved this request.")
                + f"\n\nIf the problem is not solved, reopen ticket {ticket.id} within "
                f"{ctx.settings.ticket_reopen_days} days.",
            )
        return ticket


async def add_comment(
    ctx: AppContext,
    actor: Actor,
    ticket_id: uuid.UUID,
    body: str,
    *,
    internal: bool = False,
    next_update_at: datetime | None = None,
) -> TicketComment:
    """Add a message to a ticket's conversation.

    The customer's side (the customer or its partner) writes public comments only; one while the ticket
    waits on it resumes the ticket. A public staff comment is the first response ("responded") the first
    time and an update ("updated", with the next update's time if stated) afterwards, takes a new or
    acknowledged ticket into progress, is e-mailed to the customer's correspondent and settles the
    ticket's support-time deduction. Internal comments record no SLA event and send nothing."""
    _require_participant(actor)
    text = (body or "").strip()
    longest = ctx.settings.max_text_length
    if not text or len(text) > longest:
        raise ValidationFailed(f"a comment must be 1 to {longest} characters", field="body")
    inputs.text(ctx, text, "body")
    staff = actor.kind not in _PARTICIPANTS
    if internal and not staff:
        raise PermissionDenied(
            f"{actor.name} may not write internal comments: they are for the provider's staff", field="internal"
        )
    if next_update_at is not None and (not staff or internal):
        raise ValidationFailed(
            "a next update is announced only with a public reply from the support team", field="nextUpdateAt"
        )
    now = ctx.now()
    _check_next_update(ctx, now, next_update_at)
    async with ctx.db.write() as session:
        view = await _locked_view(session, actor, ticket_id)
        ticket = view.ticket
        if ticket.status == "closed":
            raise ValidationFailed(
                "the ticket is closed and a closed ticket is final: file a new ticket instead", field="ticketId"
            )
        comment = TicketComment(
            ticket_id=ticket.id, author_kind=actor.kind, author_ref=actor.ref, author_name=actor.name,
            internal=internal, automatic=False, body=text, created_at=now,
        )
        session.add(comment)
        before = ticket.status
        kind: str | None = None
        if not staff:
            if ticket.status == "waiting_on_customer":
                kind, ticket.status = "resumed", "in_progress"
        elif not internal:
            answered = any(e.kind == "responded" and not e.automatic for e in view.events)
            kind = "updated" if answered else "responded"
            if ticket.status in ("new", "acknowledged"):
                ticket.status = "in_progress"
        if kind is not None:
            session.add(_event(view, actor.kind, actor.ref, kind, now, next_update_at=next_update_at))
        await session.flush()
        detail: dict[str, object] = {"comment_id": str(comment.id), "internal": internal, "event": kind}
        if ticket.status != before:
            detail.update({"from": before, "to": ticket.status})
        await audit.record(
            session, ctx, actor, "ticket.comment", target_type="ticket", target_id=ticket.id,
            on_behalf_of_customer_id=ticket.customer_id, detail=detail,
        )
        # An internal comment is the provider's alone: only its own subscriptions hear of it.
        await webhooks.emit(
            session, ctx, "ticket.commented", ticket.customer_id,
            webhooks.ticket_data(ticket, comment=webhooks.comment_data(comment)), provider_only=internal,
        )
        if staff and not internal:
            await outbox.queue(
                session, ctx, kind="staff_reply", customer_id=ticket.customer_id, ticket_id=ticket.id,
                dedupe_key=f"ticket:{ticket.id}:reply:{comment.id}",
                subject=f"Re: [{view.plan.program.provider}] {ticket.subject}",
                body=f"{actor.name} wrote:\n\n{text}",
            )
            # The reply opens the conversation: its support time is deducted with it, or the reply is refused.
            await settle_ticket(session, ctx, actor, ticket, reason=f"reply on ticket {ticket.id}")
        return comment


async def list_comments(ctx: AppContext, actor: Actor, ticket_id: uuid.UUID) -> list[TicketComment]:
    """A ticket's conversation, oldest first. Internal comments are for the provider's staff only."""
    policy.require(actor, "ticket.read")
    async with ctx.db.read() as session:
        if await session.scalar(policy.visible_tickets(actor).where(Ticket.id == ticket_id)) is None:
            raise NotFound("ticket", ticket_id, field="ticketId")
        query = (
            select(TicketComment)
            .where(TicketComment.ticket_id == ticket_id)
            .order_by(TicketComment.created_at, TicketComment.id)
        )
        if not actor.is_provider:
            query = query.where(TicketComment.internal.is_(False))
        return list(await session.scalars(query))


@dataclass(frozen=True)
class TicketRecord:
    """What a ticket holds besides its events: the conversation the caller may see, the time logged
    and the deductions made for it."""

    comments: list[TicketComment]
    time_entries: list[TimeEntry]
    deductions: list[LedgerEntry]


async def ticket_records(ctx: AppContext, actor: Actor, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, TicketRecord]:
    """Comments, time entries and deductions of the visible tickets among `ids`, in three queries."""
    policy.require(actor, "ticket.read")
    async with ctx.db.read() as session:
        visible = list(await session.scalars(policy.visible_tickets(actor).where(Ticket.id.in_(set(ids))).with_only_columns(Ticket.id)))
        found = {ident: TicketRecord([], [], []) for ident in visible}
        if not visible:
            return found
        comments = select(TicketComment).where(TicketComment.ticket_id.in_(visible))
        if not actor.is_provider:
            comments = comments.where(TicketComment.internal.is_(False))
        for comment in await session.scalars(comments.order_by(TicketComment.created_at, TicketComment.id)):
            found[comment.ticket_id].comments.append(comment)
        for entry in await session.scalars(
            select(TimeEntry).where(TimeEntry.ticket_id.in_(visible)).order_by(TimeEntry.created_at, TimeEntry.id)
        ):
            found[entry.ticket_id].time_entries.append(entry)
        for deduction in await session.scalars(
            select(LedgerEntry).where(LedgerEntry.ticket_id.in_(visible)).order_by(LedgerEntry.created_at, LedgerEntry.id)
        ):
            found[deduction.ticket_id].deductions.append(deduction)
        return found


def _with_plans(query: Select[Any]) -> Select[Any]:
    """Tickets with their contract's plan and program (its document left out: `parse_documents` supplies it)."""
    return (
        query.add_columns(PlanRecord, ProgramRecord)
        .join(Contract, Contract.id == Ticket.contract_id)
        .join(PlanRecord, PlanRecord.id == Contract.plan_id)
        .join(ProgramRecord, ProgramRecord.id == PlanRecord.program_id)
        .options(WITHOUT_DOCUMENT)
    )


async def _ticket_views(session: AsyncSession, actor: Actor, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, TicketView]:
    rows = (
        await session.execute(_with_plans(policy.visible_tickets(actor)).where(Ticket.id.in_(set(ids))))
    ).all()
    await parse_documents(session, [program for _, _, program in rows])
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
    return sla_of_views(ctx, (await get_tickets(ctx, actor, ids)).values())


def sla_of_views(ctx: AppContext, views: Iterable[TicketView]) -> dict[uuid.UUID, list[TargetClock]]:
    """The SLA clocks, as of now, of tickets already read (with their events) by a caller allowed to."""
    now, share = ctx.now(), ctx.settings.sla_at_risk_share
    return {view.ticket.id: _sla_of(view, now, share) for view in views}


async def calendar_windows(
    ctx: AppContext, actor: Actor, program_code: str, calendar_code: str, start: date, end: date
) -> list[tuple[datetime, datetime]]:
    """The open windows of a program's calendar from the start of `start` to the end of `end`, local."""
    policy.require(actor, "calendar.read")
    inputs.text(ctx, program_code, "programCode")
    inputs.text(ctx, calendar_code, "calendar")
    inputs.day(ctx, start, "fromDate")
    inputs.day(ctx, end, "toDate")
    if end < start:
        raise ValidationFailed(f"the range ends ({end}) before it starts ({start})", field="toDate")
    if (end - start).days >= MAX_WINDOW_DAYS:
        raise ValidationFailed(f"ask for at most {MAX_WINDOW_DAYS} days at a time", field="toDate")
    record, _ = await get_program(ctx, actor, program_code)
    spec = program_model(record).calendars.get(calendar_code)
    if spec is None:
        known = ", ".join(program_model(record).calendars) or "none"
        raise NotFound("calendar", f"{program_code}/{calendar_code} (the program has: {known})", field="calendar")
    zone = ZoneInfo(spec.timezone)
    first = datetime.combine(start, time(0), zone)
    last = datetime.combine(end + timedelta(days=1), time(0), zone)
    return compile_calendar(spec).open_windows(first, last)


# ---- listing tickets -------------------------------------------------------------------------------

# Candidates read per statement while an SLA filter (at risk, breached) scans past non-matching tickets,
# and at most how many one request examines: past that, the page ends early (hasNextPage, and a cursor to
# go on from), so no request replays the clocks of a whole history.
_SLA_SCAN_BATCH = 200
_SLA_SCAN_LIMIT = 2_000


@dataclass(frozen=True)
class TicketPage:
    views: list[TicketView]
    has_next_page: bool
    end_cursor: str | None


def ticket_cursor(ticket: Ticket) -> str:
    return encode_cursor(ticket.created_at, ticket.id)


def _sla_of(view: TicketView, now: datetime, share: Decimal) -> list[TargetClock]:
    """None where the severity has no SLA, or for a ticket filed after `now`: another process whose clock runs
    a little ahead filed it (or, in tests, a clock was set back); its clocks start once `now` reaches it."""
    if not _has_sla(view) or view.ticket.created_at.astimezone(UTC) > now.astimezone(UTC):
        return []
    return sla_clocks(_domain_events(view.events), view.plan.program, now, at_risk_share=share)


def ticket_clocks(view: TicketView, now: datetime, share: Decimal) -> list[TargetClock]:
    """A ticket's SLA clocks as they stood at `now` (none where its severity has no SLA, or it was filed after
    `now`), for callers that read tickets themselves (the portal's lists, the monthly reports)."""
    return _sla_of(view, now, share)


async def list_tickets(
    ctx: AppContext,
    actor: Actor,
    *,
    customer_id: uuid.UUID | None = None,
    status: str | None = None,
    severity: str | None = None,
    ticket_type: str | None = None,
    filed_by: str | None = None,
    text: str | None = None,
    at_risk: bool | None = None,
    breached: bool | None = None,
    first: int = 50,
    after: str | None = None,
) -> TicketPage:
    """The tickets the actor sees, newest first by (created_at, id), paged by keyset. Every filter but
    the SLA ones is SQL; for `at_risk` / `breached` the clocks of each batch of candidates are replayed
    and scanning goes on until `first` tickets match or the candidates run out. Each batch costs two
    statements (tickets with their plans, then their events), whatever its size. An SLA filter examines at
    most `_SLA_SCAN_LIMIT` candidates a request: a page may then hold fewer than `first` tickets, even none,
    with `has_next_page` and an `end_cursor` (the last ticket examined) to go on from."""
    policy.require(actor, "ticket.read")
    check_first(first)
    for value, name in (
        (status, "status"), (severity, "severity"), (ticket_type, "ticketType"), (filed_by, "filedBy"), (text, "text")
    ):
        inputs.optional_text(ctx, value, name)
    query = _with_plans(policy.visible_tickets(actor)).order_by(Ticket.created_at.desc(), Ticket.id.desc())
    if customer_id is not None:
        query = query.where(Ticket.customer_id == customer_id)
    if status is not None:
        query = query.where(Ticket.status == status)
    if severity is not None:
        query = query.where(Ticket.severity == severity)
    if ticket_type is not None:
        query = query.where(Ticket.ticket_type == ticket_type)
    if filed_by is not None:
        query = query.where(Ticket.filed_by_ref == filed_by)
    needle = (text or "").strip().lower()
    if needle:
        query = query.where(
            or_(
                func.lower(Ticket.subject).contains(needle, autoescape=True),
                func.lower(Ticket.description).contains(needle, autoescape=True),
            )
        )
    by_sla = at_risk is not None or breached is not None
    batch = max(first + 1, _SLA_SCAN_BATCH) if by_sla else first + 1
    now, share = ctx.now(), ctx.settings.sla_at_risk_share
    matched: list[TicketView] = []
    cursor = after
    scanned, stopped_at = 0, None
    async with ctx.db.read() as session:
        while len(matched) <= first:
            if by_sla and scanned >= _SLA_SCAN_LIMIT:
                stopped_at = cursor
                break
            page_query = query.limit(batch)
            if cursor is not None:
                page_query = page_query.where(older_than(Ticket.created_at, Ticket.id, cursor))
            rows = (await session.execute(page_query)).all()
            if not rows:
                break
            await parse_documents(session, [program for _, _, program in rows])
            events: dict[uuid.UUID, list[TicketEventRecord]] = {ticket.id: [] for ticket, _, _ in rows}
            for event in await session.scalars(
                select(TicketEventRecord)
                .where(TicketEventRecord.ticket_id.in_(list(events)))
                .order_by(TicketEventRecord.ticket_id, TicketEventRecord.at, TicketEventRecord.position)
            ):
                events[event.ticket_id].append(event)
            for ticket, plan, program in rows:
                view = TicketView(ticket, events[ticket.id], plan_view(plan, program))
                if by_sla:
                    clocks = _sla_of(view, now, share)
                    if at_risk is not None and any(c.at_risk for c in clocks) != at_risk:
                        continue
                    if breached is not None and any(c.breached for c in clocks) != breached:
                        continue
                matched.append(view)
                if len(matched) > first:
                    break
            scanned += len(rows)
            if len(rows) < batch:
                break
            cursor = ticket_cursor(rows[-1][0])
    page = matched[:first]
    if stopped_at is not None:
        return TicketPage(page, True, stopped_at)
    return TicketPage(page, len(matched) > first, ticket_cursor(page[-1].ticket) if page else None)


async def last_comments(
    ctx: AppContext, actor: Actor, ticket_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, TicketComment]:
    """Each visible ticket's latest comment (by created_at, id, as `list_comments` orders them) that the
    actor may read: customers and partners never get internal ones. One statement for any number."""
    policy.require(actor, "ticket.read")
    if not ticket_ids:
        return {}
    visible = policy.visible_tickets(actor).with_only_columns(Ticket.id).where(Ticket.id.in_(set(ticket_ids)))
    ranked = select(
        TicketComment.id,
        func.row_number()
        .over(
            partition_by=TicketComment.ticket_id,
            order_by=(TicketComment.created_at.desc(), TicketComment.id.desc()),
        )
        .label("rank"),
    ).where(TicketComment.ticket_id.in_(visible))
    if not actor.is_provider:
        ranked = ranked.where(TicketComment.internal.is_(False))
    latest = ranked.subquery()
    async with ctx.db.read() as session:
        rows = await session.scalars(
            select(TicketComment).join(latest, latest.c.id == TicketComment.id).where(latest.c.rank == 1)
        )
        return {comment.ticket_id: comment for comment in rows}

"""Intermediated access: who the provider writes to for a customer, what is out of scope, and whether
an actor may file a ticket of a type for a customer (partner links, certification, production access)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.models import Contract, Customer, Partner, PartnerCustomer, PlanRecord, ProgramRecord
from api.programs.schema import TicketType
from api.services import policy
from api.services.context import Actor, AppContext
from api.services.errors import DomainError, ErrorCode, NotFound, OutOfScope, PermissionDenied, ValidationFailed
from api.services.programs import WITHOUT_DOCUMENT, PlanView, parse_documents, plan_view

__all__ = [
    "Correspondent",
    "FilingDecision",
    "ScopeEntry",
    "check_filing",
    "correspondent",
    "correspondent_in",
    "correspondents_in",
    "out_of_scope",
    "plans_in_force",
]


@dataclass(frozen=True)
class Correspondent:
    """Where everything the provider sends about a customer goes: the managing partner, or the customer."""

    kind: str  # "partner" or "customer"
    name: str
    email: str | None
    customer_id: uuid.UUID
    partner_id: uuid.UUID | None


@dataclass(frozen=True)
class ScopeEntry:
    code: str
    text: str
    list: str  # "out_of_scope" or "out_of_support"
    source: str  # "plan", "program" or "partner_program"
    source_name: str
    program_code: str


@dataclass(frozen=True)
class FilingDecision:
    customer_id: uuid.UUID
    contract_id: uuid.UUID
    plan: PlanView
    ticket_type_code: str
    ticket_type: TicketType
    partner_id: uuid.UUID | None


async def correspondent_in(session: AsyncSession, customer_id: uuid.UUID) -> Correspondent:
    """For the jobs that send (replies, notifications, reports): a managed customer is never written to."""
    found = await correspondents_in(session, [customer_id])
    if customer_id not in found:
        raise NotFound("customer", customer_id, field="customerId")
    return found[customer_id]


async def correspondents_in(session: AsyncSession, customer_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Correspondent]:
    """`correspondent_in` for many customers in two statements; unknown customers are left out."""
    ids = set(customer_ids)
    customers = {c.id: c for c in await session.scalars(select(Customer).where(Customer.id.in_(ids)))}
    managers: dict[uuid.UUID, Partner] = {}
    for customer_id, partner in await session.execute(
        select(PartnerCustomer.customer_id, Partner)
        .join(Partner, Partner.id == PartnerCustomer.partner_id)
        .where(PartnerCustomer.customer_id.in_(ids), PartnerCustomer.managed)
        .order_by(Partner.code)
    ):
        managers.setdefault(customer_id, partner)  # one managing partner (the first by code) is written to
    found = {}
    for ident, customer in customers.items():
        manager = managers.get(ident)
        found[ident] = (
            Correspondent("partner", manager.name, manager.email, ident, manager.id)
            if manager is not None
            else Correspondent("customer", customer.name, customer.email, ident, None)
        )
    return found


async def _visible_customer(session: AsyncSession, actor: Actor, customer_id: uuid.UUID) -> Customer:
    customer = await session.scalar(policy.visible_customers(actor).where(Customer.id == customer_id))
    if customer is None:
        raise NotFound("customer", customer_id, field="customerId")
    return customer


async def correspondent(ctx: AppContext, actor: Actor, customer_id: uuid.UUID) -> Correspondent:
    policy.require(actor, "customer.read")
    async with ctx.db.read() as session:
        await _visible_customer(session, actor, customer_id)
        return await correspondent_in(session, customer_id)


async def _plans_in_force(
    session: AsyncSession, ctx: AppContext, customer_id: uuid.UUID, on: date | None
) -> list[tuple[Contract, PlanView]]:
    """The customer's contracts in force on `on`; without one, on each program's own today (which may
    be a day either side of the UTC date)."""
    utc_day = ctx.now().date()
    first, last = (on, on) if on is not None else (utc_day + timedelta(days=1), utc_day - timedelta(days=1))
    rows = (
        await session.execute(
            select(Contract, PlanRecord, ProgramRecord)
            .join(PlanRecord, PlanRecord.id == Contract.plan_id)
            .join(ProgramRecord, ProgramRecord.id == PlanRecord.program_id)
            .where(Contract.customer_id == customer_id, Contract.effective_date <= first, Contract.end_date >= last)
            .order_by(Contract.reference)
            .options(WITHOUT_DOCUMENT)
        )
    ).all()
    await parse_documents(session, [program for _, _, program in rows])
    found = [(contract, plan_view(plan, program)) for contract, plan, program in rows]
    return [(c, v) for c, v in found if c.effective_date <= (on or ctx.today(v.program.timezone)) <= c.end_date]


async def plans_in_force(
    ctx: AppContext, actor: Actor, customer_id: uuid.UUID, on: date | None = None
) -> list[tuple[Contract, PlanView]]:
    """The contracts of a customer the actor sees that are in force on `on` (today), by reference: the order
    `check_filing` picks the contract a ticket goes to."""
    policy.require(actor, "customer.read")
    async with ctx.db.read() as session:
        await _visible_customer(session, actor, customer_id)
        return await _plans_in_force(session, ctx, customer_id, on)


def _today(ctx: AppContext, plans: list[tuple[Contract, PlanView]]) -> date:
    return ctx.today(plans[0][1].program.timezone) if plans else ctx.now().date()


async def out_of_scope(ctx: AppContext, actor: Actor, customer_id: uuid.UUID, on: date | None = None) -> list[ScopeEntry]:
    """What is out of scope or out of support for a customer on a day (today by default): the lists of
    the plans it holds then, of their programs, and of their partner programs, each with its source."""
    policy.require(actor, "scope.read")
    async with ctx.db.read() as session:
        await _visible_customer(session, actor, customer_id)
        plans = await _plans_in_force(session, ctx, customer_id, on)
    entries: list[ScopeEntry] = []
    programs_done: set[str] = set()
    for _, view in plans:
        rules, program = view.rules, view.program
        for list_name in ("out_of_scope", "out_of_support"):
            entries += [
                ScopeEntry(i.code, i.text, list_name, "plan", rules.name, program.code) for i in getattr(rules, list_name)
            ]
        if program.code in programs_done:
            continue
        programs_done.add(program.code)
        for list_name in ("out_of_scope", "out_of_support"):
            entries += [
                ScopeEntry(i.code, i.text, list_name, "program", program.name, program.code)
                for i in getattr(program, list_name)
            ]
        if program.partners is not None:
            entries += [
                ScopeEntry(i.code, i.text, "out_of_scope", "partner_program", program.partners.name, program.code)
                for i in program.partners.out_of_scope
            ]
    return entries


async def check_filing(
    ctx: AppContext, actor: Actor, customer_id: uuid.UUID, ticket_type: str, on: date | None = None
) -> FilingDecision:
    """May `actor` file a ticket of `ticket_type` for the customer on `on` (today by default)?
    Raises the refusal, with the program's own reason where it has one."""
    policy.require(actor, "ticket.check")
    async with ctx.db.read() as session:
        link = None
        if actor.kind == "customer" and actor.customer_id != customer_id:
            raise OutOfScope(policy.OUT_OF_SCOPE_MESSAGE, field="customerId")
        if actor.kind == "partner":
            link = await session.scalar(policy.partner_link(actor, customer_id))
            if link is None:
                # The same answer whether or not the customer exists: nothing leaks.
                raise OutOfScope(policy.OUT_OF_SCOPE_MESSAGE, field="customerId")
            if not link.can_file_tickets:
                raise PermissionDenied(
                    f"{actor.name} may not file tickets for this customer: the customer has not allowed it",
                    field="customerId",
                )
        await _visible_customer(session, actor, customer_id)
        plans = await _plans_in_force(session, ctx, customer_id, on)
        offered = [(c, v) for c, v in plans if ticket_type in v.rules.ticket_types]
        if not offered:
            available = sorted({code for _, v in plans for code in v.rules.ticket_types})
            raise ValidationFailed(
                f"no contract of this customer in force on {on or _today(ctx, plans)} offers ticket type "
                f"{ticket_type!r}"
                + (
                    f" (offered: {', '.join(available)})"
                    if available
                    else " (its contracts offer no ticket types)" if plans else " (no contract in force)"
                ),
                field="ticketType",
            )
        contract, view = offered[0]
        day = on or ctx.today(view.program.timezone)
        rules = view.rules.ticket_types[ticket_type]
        if rules.requires_certified_partner or rules.requires_production_access:
            partner = None if link is None else await session.get(Partner, link.partner_id)
            _check_integration_support(actor, view, rules, partner, link, day)
    return FilingDecision(customer_id, contract.id, view, ticket_type, rules, actor.partner_id)


def _check_integration_support(
    actor: Actor,
    view: PlanView,
    rules: TicketType,
    partner: Partner | None,
    link: PartnerCustomer | None,
    day: date,
) -> None:
    if actor.is_provider:
        return
    partners = view.program.partners
    reason = (partners.integration_support_refusal.strip() if partners else "") or (
        f"{rules.name} is given only to a certified partner with access to the customer's production account."
    )
    if partner is None or link is None:
        problem = "it was requested by the customer, not by a partner"
    elif rules.requires_certified_partner and (
        partner.certified_until_date is None or partner.certified_until_date < day
    ):
        problem = (
            f"{partner.name} is not certified"
            if partner.certified_until_date is None
            else f"{partner.name}'s certification expired on {partner.certified_until_date}"
        )
    elif rules.requires_production_access and not link.production_access:
        problem = f"{partner.name} has no access to the customer's production account"
    else:
        return
    raise DomainError(f"{reason} ({problem})", code=ErrorCode.PARTNER_NOT_ELIGIBLE, field="ticketType")

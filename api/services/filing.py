"""What a filing form offers for one customer: the ticket types of the plans in force, each with the plan it
is filed under and that plan's severities and their targets, the diagnosis it needs, and the lists of what is
out of scope or out of support, each with its source. `tickets.open_ticket` still decides every filing."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select

from api.models import Customer, PartnerCustomer
from api.programs.schema import Severity, Target, TicketType
from api.services import access, policy
from api.services.access import ScopeEntry
from api.services.context import Actor, AppContext
from api.services.errors import DomainError, NotFound, OutOfScope

__all__ = ["FilingForm", "SeverityChoice", "TargetTerm", "TypeChoice", "customers_to_file_for", "filing_form"]

_TARGETS = (
    ("acknowledge", "acknowledge"),
    ("first_response", "first response"),
    ("update_interval", "updates every"),
    ("resolution", "resolution"),
)


@dataclass(frozen=True)
class TargetTerm:
    words: str  # "first response"
    minutes: int | None  # None: as time permits
    calendar: str | None


@dataclass(frozen=True)
class SeverityChoice:
    code: str
    name: str
    description: str
    targets: list[TargetTerm]


@dataclass(frozen=True)
class TypeChoice:
    code: str
    name: str
    description: str
    needs_diagnosis: bool
    contract_reference: str  # the contract a ticket of this type is filed under
    plan_name: str
    severities: list[SeverityChoice]  # empty: filed without a severity (no SLA)
    guarantee: str


@dataclass(frozen=True)
class FilingForm:
    customer: Customer
    types: list[TypeChoice]
    scope: list[ScopeEntry]

    def type(self, code: str | None) -> TypeChoice | None:
        return next((t for t in self.types if t.code == code), None)


def _terms(severity: Severity) -> list[TargetTerm]:
    found = []
    for attr, words in _TARGETS:
        target: Target | None = getattr(severity, attr)
        if target is not None:
            found.append(TargetTerm(words, target.duration_minutes, target.calendar))
    return found


def _severities(plan_severities: dict[str, Severity], offered: TicketType) -> list[SeverityChoice]:
    codes = list(plan_severities) if offered.severities is None else list(offered.severities)
    ranked = sorted((c for c in codes if c in plan_severities), key=lambda c: plan_severities[c].rank)
    return [
        SeverityChoice(c, plan_severities[c].name, plan_severities[c].description, _terms(plan_severities[c]))
        for c in ranked
    ]


async def customers_to_file_for(ctx: AppContext, actor: Actor) -> list[Customer]:
    """The customers the actor may file tickets for: its own; a partner's whose link allows filing; for the
    provider's staff, every customer."""
    if not policy.may(actor, "ticket.create"):
        return []
    async with ctx.db.read() as session:
        if actor.kind == "partner":
            return list(
                await session.scalars(
                    select(Customer)
                    .join(PartnerCustomer, PartnerCustomer.customer_id == Customer.id)
                    .where(PartnerCustomer.partner_id == actor.partner_id, PartnerCustomer.can_file_tickets)
                    .order_by(Customer.name)
                )
            )
        return list(await session.scalars(policy.visible_customers(actor).order_by(Customer.name)))


async def filing_form(ctx: AppContext, actor: Actor, customer_id: uuid.UUID) -> FilingForm:
    """What the actor may file for the customer today. A customer it may not file for is answered as
    `check_filing` answers it: NotFound / OutOfScope, the same whether or not the customer exists."""
    policy.require(actor, "ticket.check")
    if customer_id not in {c.id for c in await customers_to_file_for(ctx, actor)}:
        raise OutOfScope(policy.OUT_OF_SCOPE_MESSAGE, field="customerId")
    async with ctx.db.read() as session:
        customer = await session.get(Customer, customer_id)
    if customer is None:  # pragma: no cover - listed just above
        raise NotFound("customer", customer_id, field="customerId")
    types: dict[str, TypeChoice] = {}
    # A ticket goes to the first contract in force (by reference) whose plan offers its type.
    for contract, view in await access.plans_in_force(ctx, actor, customer_id):
        for code, offered in view.rules.ticket_types.items():
            if code in types:
                continue
            types[code] = TypeChoice(
                code, offered.name, offered.description, offered.needs_diagnosis, contract.reference,
                view.rules.name, _severities(view.rules.severities, offered), offered.guarantee,
            )
    try:
        scope = await access.out_of_scope(ctx, actor, customer_id)
    except DomainError:  # pragma: no cover - the customer was found above
        scope = []
    return FilingForm(customer, list(types.values()), scope)

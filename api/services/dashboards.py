"""Read models of the portal's home pages and the staff queue: what is left of each bucket and when it
expires, consumption by month, open tickets with the state of their SLA clocks, upcoming activities, and
the customers a partner works with. Reads only; every row comes through the policy's visible_* queries."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.orm import aliased

from api.domain.periods import add_months
from api.domain.sla import TargetClock
from api.models import (
    Booking,
    BookingStatus,
    Contract,
    Customer,
    LedgerEntry,
    LedgerKind,
    PartnerCustomer,
    PlanRecord,
    ProgramRecord,
    Ticket,
    User,
    UserKind,
)
from api.models.tickets import OPEN_STATUSES
from api.programs.schema import Bucket
from api.services import contracts, parties, policy, tickets
from api.services.context import Actor, AppContext
from api.services.contracts import ContractView, EntitlementPeriod
from api.services.errors import NotFound, ValidationFailed
from api.services.paging import check_first, cut_page, decode_key_cursor, encode_key_cursor
from api.services.programs import WITHOUT_DOCUMENT, parse_documents, program_model
from api.services.tickets import TicketView

__all__ = [
    "OPEN_STATUSES",
    "BucketHistory",
    "CustomerChoice",
    "CustomerHome",
    "OpenTicket",
    "PartnerCustomerRow",
    "Queue",
    "SlaState",
    "consumption_history",
    "customer_choices",
    "customer_home",
    "open_tickets",
    "queue_cursor",
    "PartnerHome",
    "partner_home",
    "relation",
    "severity_options",
    "sla_state",
    "staff_queue",
]

HISTORY_MONTHS = 12
# Open tickets read for one home page or queue: the oldest first, so none that has waited longest is missed.
MAX_OPEN = 200
QUEUE_PAGE = 50  # open tickets a page of the staff queue
PARTNER_PAGE = 25  # customers a page on the partner's home
UPCOMING = 10


# ---- who the viewer acts for --------------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerChoice:
    """A customer the viewer acts for, with the partner's link to it (None for a customer's own user)."""

    customer: Customer
    link: PartnerCustomer | None = None

    @property
    def managed(self) -> bool:
        return self.link is not None and self.link.managed


async def customer_choices(ctx: AppContext, actor: Actor) -> list[CustomerChoice]:
    """The customers the viewer acts for: a customer its own; a partner every customer it is linked to (by
    name), managed or not; the provider's staff none (they act for every customer)."""
    policy.require(actor, "customer.read")
    async with ctx.db.read() as session:
        if actor.kind == "customer" and actor.customer_id is not None:
            own = await session.get(Customer, actor.customer_id)
            return [CustomerChoice(own)] if own is not None else []
        if actor.kind != "partner":
            return []
        rows = await session.execute(
            select(Customer, PartnerCustomer)
            .join(PartnerCustomer, PartnerCustomer.customer_id == Customer.id)
            .where(PartnerCustomer.partner_id == actor.partner_id)
            .order_by(Customer.name, Customer.id)
        )
        return [CustomerChoice(customer, link) for customer, link in rows]


async def relation(ctx: AppContext, actor: Actor, customer_id: uuid.UUID) -> PartnerCustomer | None:
    """The link through which a partner acts for the customer (None for anyone else, or without a link):
    what `policy.allows` needs to say what a partner may do for that customer."""
    if actor.kind != "partner":
        return None
    async with ctx.db.read() as session:
        return await session.scalar(policy.partner_link(actor, customer_id))


# ---- SLA state of open tickets -------------------------------------------------------------------------


@dataclass(frozen=True)
class SlaState:
    clocks: list[TargetClock]
    next_due: datetime | None  # the earliest instant a clock not yet met falls (or fell) due
    at_risk: bool
    breached: bool


def sla_state(clocks: Sequence[TargetClock]) -> SlaState:
    running = [c.due_at for c in clocks if c.met_at is None and c.due_at is not None]
    return SlaState(
        list(clocks),
        min(running) if running else None,
        any(c.at_risk for c in clocks),
        any(c.breached for c in clocks),
    )


@dataclass(frozen=True)
class OpenTicket:
    view: TicketView
    sla: SlaState
    customer_name: str
    assignee_id: uuid.UUID | None  # the client manager of the ticket's contract

    @property
    def ticket(self) -> Ticket:
        return self.view.ticket


def _due_order(row: OpenTicket) -> tuple[int, datetime]:
    """Nearest due instant first (breached ones, due in the past, lead); tickets without a running clock last."""
    due = row.sla.next_due
    return (0, due) if due is not None else (1, row.ticket.created_at.astimezone(UTC))


def queue_cursor(ticket: Ticket) -> str:
    """Where a ticket stands in the queue's order: (stored due instant, none last; filed; id)."""
    due = ticket.sla_due_at.isoformat() if ticket.sla_due_at is not None else ""
    return encode_key_cursor(f"{due}|{ticket.created_at.isoformat()}|{ticket.id}")


def _after_in_queue(cursor: str) -> ColumnElement[bool]:
    try:
        due_text, filed_text, ident_text = decode_key_cursor(cursor).split("|")
        due = datetime.fromisoformat(due_text) if due_text else None
        filed, ident = datetime.fromisoformat(filed_text), uuid.UUID(ident_text)
    except ValueError:
        raise ValidationFailed(f"cursor {cursor!r} is not one this API gave out", field="after") from None
    later = or_(Ticket.created_at > filed, and_(Ticket.created_at == filed, Ticket.id > ident))
    if due is None:
        return and_(Ticket.sla_due_at.is_(None), later)
    return or_(
        Ticket.sla_due_at > due, Ticket.sla_due_at.is_(None), and_(Ticket.sla_due_at == due, later)
    )


async def open_tickets(
    ctx: AppContext,
    actor: Actor,
    *,
    customer_id: uuid.UUID | None = None,
    customer_ids: Sequence[uuid.UUID] | None = None,
    program_code: str | None = None,
    severity: str | None = None,
    assignee_id: uuid.UUID | None = None,
    limit: int = MAX_OPEN,
    after: str | None = None,
) -> list[OpenTicket]:
    """The open tickets the actor sees, with their clocks as of now: the `limit` due soonest by the stored due
    instant (indexed; tickets without a running target after them, oldest first), in that order, from after
    the cursor (`queue_cursor`) when given; four statements whatever their number. To show them by the clocks
    as of now, sort them by `_due_order`."""
    policy.require(actor, "ticket.read")
    query = (
        policy.visible_tickets(actor)
        .with_only_columns(Ticket.id, Customer.name, Contract.client_manager_id)
        .join(Customer, Customer.id == Ticket.customer_id)
        .join(Contract, Contract.id == Ticket.contract_id)
        .where(Ticket.status.in_(OPEN_STATUSES))
        .order_by(Ticket.sla_due_at.asc().nulls_last(), Ticket.created_at, Ticket.id)  # ix_tickets_open_due
        .limit(limit)
    )
    if after is not None:
        query = query.where(_after_in_queue(after))
    if customer_id is not None:
        query = query.where(Ticket.customer_id == customer_id)
    if customer_ids is not None:
        query = query.where(Ticket.customer_id.in_(set(customer_ids)))
    if severity:
        query = query.where(Ticket.severity == severity)
    if assignee_id is not None:
        query = query.where(Contract.client_manager_id == assignee_id)
    if program_code:
        query = (
            query.join(PlanRecord, PlanRecord.id == Contract.plan_id)
            .join(ProgramRecord, ProgramRecord.id == PlanRecord.program_id)
            .where(ProgramRecord.code == program_code)
        )
    async with ctx.db.read() as session:
        rows = (await session.execute(query)).all()
    names = {ident: (name, manager) for ident, name, manager in rows}
    views = await tickets.get_tickets(ctx, actor, list(names))
    now, share = ctx.now(), ctx.settings.sla_at_risk_share
    return [
        OpenTicket(views[ident], sla_state(tickets.ticket_clocks(views[ident], now, share)), *names[ident])
        for ident in names
        if ident in views
    ]


# ---- consumption by month ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BucketHistory:
    """One bucket of one contract: net consumption (ledger units) in each month, oldest first."""

    contract: Contract
    plan_name: str
    bucket_code: str
    bucket: Bucket
    totals: list[int]


def history_months(today: date, count: int = HISTORY_MONTHS) -> list[date]:
    first = today.replace(day=1)
    return [add_months(first, -n) for n in range(count - 1, -1, -1)]


async def consumption_history(
    ctx: AppContext, actor: Actor, views: Sequence[ContractView], months: Sequence[date]
) -> list[BucketHistory]:
    """What each contract's buckets consumed in each month (by the UTC instant of the ledger entries),
    overage left out, in one statement."""
    policy.require(actor, "contract.read")
    if not views or not months:
        return []
    starts = [datetime(m.year, m.month, 1, tzinfo=UTC) for m in months]
    until = datetime.combine(add_months(months[-1], 1), datetime.min.time(), UTC)
    entry, reversed_entry = LedgerEntry, aliased(LedgerEntry)
    index = case(*((entry.created_at < start, n - 1) for n, start in enumerate(starts) if n), else_=len(starts) - 1)
    overage = LedgerKind.OVERAGE.value
    async with ctx.db.read() as session:
        rows = await session.execute(
            select(entry.contract_id, entry.bucket_code, index, func.sum(entry.quantity))
            .outerjoin(reversed_entry, reversed_entry.id == entry.reverses_entry_id)
            .where(
                entry.contract_id.in_(
                    policy.visible_contract_ids(actor).where(Contract.id.in_([v.contract.id for v in views]))
                ),
                entry.created_at >= starts[0],
                entry.created_at < until,
                entry.kind != overage,
                func.coalesce(reversed_entry.kind, "") != overage,
            )
            .group_by(entry.contract_id, entry.bucket_code, index)
        )
        sums = {(c, b, int(i)): int(total) for c, b, i, total in rows}
    return [
        BucketHistory(
            view.contract, view.plan.rules.name, code, bucket,
            [sums.get((view.contract.id, code, n), 0) for n in range(len(months))],
        )
        for view in views
        for code, bucket in view.plan.rules.buckets.items()
    ]


# ---- the customer's home -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerHome:
    customer: Customer
    entitlements: list[tuple[ContractView, list[EntitlementPeriod]]]  # contracts in force today
    months: list[date]
    history: list[BucketHistory]
    open_tickets: list[OpenTicket]
    upcoming: list[Booking]
    links: dict[uuid.UUID, PartnerCustomer | None] = field(default_factory=dict)


async def _upcoming(ctx: AppContext, actor: Actor, customer_id: uuid.UUID, limit: int = UPCOMING) -> list[Booking]:
    """Activities requested or scheduled from today on, soonest first."""
    policy.require(actor, "booking.read")
    today = ctx.now().date()
    async with ctx.db.read() as session:
        return list(
            await session.scalars(
                policy.visible_bookings(actor)
                .where(
                    Booking.customer_id == customer_id,
                    Booking.status.in_((BookingStatus.REQUESTED, BookingStatus.SCHEDULED)),
                    or_(Booking.starts_at >= ctx.now(), and_(Booking.starts_at.is_(None), Booking.requested_date >= today)),
                )
                .order_by(Booking.requested_date, Booking.starts_at, Booking.id)
                .limit(limit)
            )
        )


async def customer_home(ctx: AppContext, actor: Actor, customer_id: uuid.UUID) -> CustomerHome:
    """A customer's home: each contract in force with what is left of each bucket this period, 12 months of
    consumption, open tickets and upcoming activities. NotFound for a customer the actor does not see."""
    policy.require(actor, "customer.read")
    async with ctx.db.read() as session:
        customer = await session.scalar(policy.visible_customers(actor).where(Customer.id == customer_id))
    if customer is None:
        raise NotFound("customer", customer_id, field="customerId")
    found = await contracts.list_contracts(ctx, actor, customer_id=customer_id)
    current = [(v, p) for v, p in await contracts.current_entitlements(ctx, actor, [c.id for c in found]) if p]
    today = current[0][0].today(ctx) if current else ctx.now().date()
    months = history_months(today)
    return CustomerHome(
        customer=customer,
        entitlements=current,
        months=months,
        history=await consumption_history(ctx, actor, [v for v, _ in current], months),
        open_tickets=sorted(await open_tickets(ctx, actor, customer_id=customer_id), key=_due_order)
        if policy.may(actor, "ticket.read")
        else [],
        upcoming=await _upcoming(ctx, actor, customer_id),
    )


# ---- the partner's home --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PartnerCustomerRow:
    choice: CustomerChoice
    # This period of every bucket of every contract in force the partner sees: (plan name, period).
    entitlements: list[tuple[str, EntitlementPeriod]]
    open_tickets: int
    at_risk: int
    breached: int

    @property
    def expiring(self) -> list[tuple[str, EntitlementPeriod]]:
        return [(plan, p) for plan, p in self.entitlements if p.expiring_soon]


@dataclass(frozen=True)
class PartnerHome:
    rows: list[PartnerCustomerRow]
    has_next_page: bool
    end_cursor: str | None


def _choice_key(choice: CustomerChoice) -> tuple[str, str]:
    return (choice.customer.name, str(choice.customer.id))


async def partner_home(
    ctx: AppContext, actor: Actor, *, first: int = PARTNER_PAGE, after: str | None = None
) -> PartnerHome:
    """The customers the partner works with, by name, a page at a time: what is left this period, open
    tickets at risk or breached, and what expires soon. A constant number of statements for any page."""
    check_first(first)
    choices = await customer_choices(ctx, actor)  # by (name, id)
    if after is not None:
        name, _, ident = decode_key_cursor(after).rpartition("|")
        choices = [c for c in choices if _choice_key(c) > (name, ident)]
    choices, more, cursor = cut_page(choices, first, lambda c: encode_key_cursor("|".join(_choice_key(c))))
    ids = [c.customer.id for c in choices]
    found = await contracts.list_contracts(ctx, actor, customer_ids=ids) if ids else []
    current = await contracts.current_entitlements(ctx, actor, [c.id for c in found if c.customer_id in ids])
    periods: dict[uuid.UUID, list[tuple[str, EntitlementPeriod]]] = {ident: [] for ident in ids}
    for view, found_periods in current:
        periods[view.contract.customer_id].extend((view.plan.rules.name, p) for p in found_periods)
    counts: dict[uuid.UUID, list[int]] = {ident: [0, 0, 0] for ident in ids}
    for row in await open_tickets(ctx, actor, customer_ids=ids) if ids else []:
        tally = counts.setdefault(row.ticket.customer_id, [0, 0, 0])
        tally[0] += 1
        tally[1] += row.sla.at_risk
        tally[2] += row.sla.breached
    rows = [PartnerCustomerRow(c, periods[c.customer.id], *counts[c.customer.id]) for c in choices]
    return PartnerHome(rows, more, cursor)


# ---- the staff queue -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Queue:
    rows: list[OpenTicket]
    has_next_page: bool
    end_cursor: str | None  # the last row's place in the queue's order
    programs: list[tuple[str, str]]  # (code, name)
    severities: list[tuple[str, str]]  # (code, name), over the programs' plans
    customers: list[Customer]
    assignees: list[User]  # client managers of the contracts the actor sees


async def staff_queue(
    ctx: AppContext,
    actor: Actor,
    *,
    program_code: str | None = None,
    severity: str | None = None,
    customer_id: uuid.UUID | None = None,
    assignee_id: uuid.UUID | None = None,
    first: int = QUEUE_PAGE,
    after: str | None = None,
) -> Queue:
    """Open tickets ordered by the nearest SLA due instant, a page at a time, with what the queue can be
    filtered by. The assignee of a ticket is the client manager of its contract (tickets carry no assignee of
    their own)."""
    policy.require(actor, "ticket.update")
    check_first(first)
    found = await open_tickets(
        ctx, actor, customer_id=customer_id, program_code=program_code, severity=severity, assignee_id=assignee_id,
        limit=first + 1, after=after,
    )
    # The page is cut in the stored order (that of the cursor), then shown by the clocks as of now.
    page, more = found[:first], len(found) > first
    rows = sorted(page, key=_due_order)
    cursor = queue_cursor(page[-1].ticket) if page else None
    programs_found = await severity_options(ctx, actor)
    async with ctx.db.read() as session:
        records = list(await session.scalars(select(ProgramRecord).order_by(ProgramRecord.name).options(WITHOUT_DOCUMENT)))
        assignees = list(
            await session.scalars(
                select(User)
                .where(
                    User.kind == UserKind.STAFF,
                    User.id.in_(policy.visible_contracts(actor).with_only_columns(Contract.client_manager_id)),
                )
                .order_by(User.name)
            )
        )
    customers = await parties.customer_options(ctx, actor, customer_id)
    return Queue(rows, more, cursor, [(r.code, r.name) for r in records], programs_found, customers, assignees)


async def severity_options(ctx: AppContext, actor: Actor) -> list[tuple[str, str]]:
    """Every severity of the loaded programs' plans, (code, name) by code: what a ticket filter offers."""
    policy.require(actor, "program.read")
    async with ctx.db.read() as session:
        records = list(await session.scalars(select(ProgramRecord).order_by(ProgramRecord.code).options(WITHOUT_DOCUMENT)))
        await parse_documents(session, records)
    severities: dict[str, str] = {}
    for record in records:
        for plan in program_model(record).plans.values():
            for code, found in plan.severities.items():
                severities.setdefault(code, found.name)
    return sorted(severities.items())

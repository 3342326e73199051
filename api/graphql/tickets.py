"""GraphQL of tickets: filing, the lifecycle, the conversation, time and deductions, SLA clocks."""

from __future__ import annotations

import uuid
from datetime import date, datetime

import strawberry
import strawberry.scalars
from strawberry.types import Info

from api.domain.sla import TargetClock
from api.graphql.context import RequestContext
from api.graphql.contracts import ContractType, LedgerEntryType
from api.graphql.errors import (
    ConflictError,
    ContractInactiveError,
    InsufficientBalanceError,
    NotFoundError,
    OutOfScopeError,
    PartnerNotEligibleError,
    PermissionDeniedError,
    ValidationError,
    mutation,
    result_union,
)
from api.graphql.ids import optional_id, parse_id, require_id
from api.graphql.paging import PageInfo
from api.graphql.parties import CustomerType
from api.graphql.programs import PlanType
from api.graphql.rows import from_row
from api.models import TicketComment, TimeEntry
from api.services import deductions, tickets
from api.services.context import Actor
from api.services.errors import NotFound
from api.services.tickets import TicketView

__all__ = [
    "AddCommentInput",
    "AddCommentResult",
    "AddCommentSuccess",
    "FileTicketInput",
    "FileTicketResult",
    "FileTicketSuccess",
    "LogTimeInput",
    "LogTimeResult",
    "LogTimeSuccess",
    "SlaClockType",
    "TicketCommentType",
    "TicketConnection",
    "TicketEdge",
    "TicketEventType",
    "TicketFilter",
    "TicketMutation",
    "TicketQuery",
    "TicketType",
    "TimeEntryType",
    "TransitionTicketInput",
    "TransitionTicketResult",
    "TransitionTicketSuccess",
]


@strawberry.type(name="SlaClock", description="One SLA target of a ticket, replayed from its event history.")
class SlaClockType:
    target: str = strawberry.field(description="acknowledge, first_response, update_interval or resolution")
    calendar: str | None
    target_seconds: int | None = strawberry.field(description="Open time allowed; null when as time permits.")
    as_time_permits: bool
    best_effort: bool
    started_at: datetime
    due_at: datetime | None = strawberry.field(description="Null while paused, or when as time permits.")
    met_at: datetime | None
    breached: bool
    paused: bool
    elapsed_seconds: int
    remaining_seconds: int | None
    at_risk: bool
    missed_updates: int

    @classmethod
    def build(cls, clock: TargetClock) -> SlaClockType:
        return from_row(cls, clock, missed_updates=getattr(clock, "missed_updates", 0))


@strawberry.type(name="TicketEvent")
class TicketEventType:
    kind: str
    at: datetime
    actor_kind: str
    severity: str | None
    automatic: bool
    next_update_at: datetime | None


@strawberry.type(name="TimeEntry", description="Minutes a staff member worked on a ticket.")
class TimeEntryType:
    id: strawberry.ID
    minutes: int
    note: str
    work_date: date
    actor_name: str
    corrects_entry_id: strawberry.ID | None
    created_at: datetime

    @classmethod
    def build(cls, entry: TimeEntry) -> TimeEntryType:
        return from_row(cls, entry)


@strawberry.type(name="TicketComment", description="One comment of a ticket's conversation.")
class TicketCommentType:
    body: str
    created_at: datetime
    internal: bool = strawberry.field(description="Staff only: customers and partners never see internal comments.")
    automatic: bool
    author_kind: str
    author_name: str

    @classmethod
    def build(cls, comment: TicketComment) -> TicketCommentType:
        return from_row(cls, comment)


@strawberry.type(name="Ticket")
class TicketType:
    id: strawberry.ID
    customer_id: strawberry.ID
    contract_id: strawberry.ID
    ticket_type: str
    severity: str
    status: str
    subject: str
    filed_by_kind: str
    via_partner_id: strawberry.ID | None
    created_at: datetime
    events: list[TicketEventType]
    filed_by: str = strawberry.field(description="The actor reference of whoever filed the ticket.")

    @classmethod
    def build(cls, view: TicketView) -> TicketType:
        return from_row(
            cls,
            view.ticket,
            filed_by=view.ticket.filed_by_ref,
            events=[from_row(TicketEventType, e) for e in view.events],
        )

    @strawberry.field(description="Every SLA target of the ticket as of now: due, met, breached, paused, at risk.")
    async def sla(self, info: Info[RequestContext, None]) -> list[SlaClockType]:
        clocks = await info.context.loaders.sla.load(parse_id(self.id))
        return [SlaClockType.build(c) for c in clocks]

    @strawberry.field
    async def customer(self, info: Info[RequestContext, None]) -> CustomerType | None:
        customer = await info.context.loaders.customer.load(parse_id(self.customer_id))
        return None if customer is None else CustomerType.build(customer)

    @strawberry.field(description="The contract the ticket was filed under; null when the caller may not read it.")
    async def contract(self, info: Info[RequestContext, None]) -> ContractType | None:
        contract = await info.context.loaders.contract.load(parse_id(self.contract_id))
        return None if contract is None else ContractType.build(contract)

    @strawberry.field(description="The plan of the ticket's contract; null when the caller may not read the contract.")
    async def plan(self, info: Info[RequestContext, None]) -> PlanType | None:
        loaders = info.context.loaders
        contract = await loaders.contract.load(parse_id(self.contract_id))
        if contract is None:
            return None
        view = await loaders.plan.load(contract.plan_id)
        return None if view is None else PlanType.build(view)

    @strawberry.field(
        description="The latest comment the caller may read (never an internal one for customers and partners)."
    )
    async def last_comment(self, info: Info[RequestContext, None]) -> TicketCommentType | None:
        comment = await info.context.loaders.last_comment.load(parse_id(self.id))
        return None if comment is None else TicketCommentType.build(comment)

    @strawberry.field(description="The conversation, oldest first (internal comments for staff only).")
    async def comments(self, info: Info[RequestContext, None]) -> list[TicketCommentType]:
        record = await info.context.loaders.ticket_record.load(parse_id(self.id))
        return [TicketCommentType.build(c) for c in record.comments]

    @strawberry.field(description="Time logged on the ticket; corrections are negative entries.")
    async def time_entries(self, info: Info[RequestContext, None]) -> list[TimeEntryType]:
        record = await info.context.loaders.ticket_record.load(parse_id(self.id))
        return [TimeEntryType.build(t) for t in record.time_entries]

    @strawberry.field(description="Ledger entries deducted (or given back) for this ticket.")
    async def deductions(self, info: Info[RequestContext, None]) -> list[LedgerEntryType]:
        record = await info.context.loaders.ticket_record.load(parse_id(self.id))
        return [LedgerEntryType.build(e) for e in record.deductions]


@strawberry.type
class TicketEdge:
    cursor: str
    node: TicketType


@strawberry.type
class TicketConnection:
    edges: list[TicketEdge]
    page_info: PageInfo


@strawberry.input(description="Narrows `tickets`; every given condition must hold.")
class TicketFilter:
    customer_id: strawberry.ID | None = None
    status: str | None = None
    severity: str | None = None
    ticket_type: str | None = None
    filed_by: str | None = strawberry.field(default=None, description="The filer's actor reference.")
    text: str | None = strawberry.field(default=None, description="Case-insensitive, in the subject or description.")
    at_risk: bool | None = strawberry.field(default=None, description="Whether any SLA clock is at risk now.")
    breached: bool | None = strawberry.field(default=None, description="Whether any SLA clock is breached now.")


@strawberry.input(description="A new ticket, filed for a customer under the contract that offers its type.")
class FileTicketInput:
    customer_id: strawberry.ID
    ticket_type: str = strawberry.field(description="A ticket type code of the customer's plan, e.g. question.")
    severity: str = strawberry.field(
        default="", description="A severity the plan offers for this type; empty for plans that rank none."
    )
    subject: str
    description: str = ""
    affected_account: str | None = strawberry.field(default=None, description="Needed by diagnostic ticket types.")
    steps_followed: str | None = strawberry.field(default=None, description="Needed by diagnostic ticket types.")
    expected_result: str | None = strawberry.field(default=None, description="Needed by diagnostic ticket types.")
    scope_item: str | None = strawberry.field(
        default=None, description="The out-of-scope or out-of-support item code the request is about, if any."
    )


@strawberry.input
class TransitionTicketInput:
    ticket_id: strawberry.ID
    to: str = strawberry.field(description="new, acknowledged, in_progress, waiting_on_customer, resolved or closed.")
    reason: str = ""
    next_update_at: datetime | None = strawberry.field(
        default=None, description="When the customer hears next; with its time zone."
    )


@strawberry.input
class AddCommentInput:
    ticket_id: strawberry.ID
    body: str
    internal: bool = strawberry.field(default=False, description="Staff only: not shown to the customer's side.")
    next_update_at: datetime | None = strawberry.field(
        default=None, description="A public staff reply may announce the next update; with its time zone."
    )


@strawberry.input
class LogTimeInput:
    ticket_id: strawberry.ID
    minutes: int = strawberry.field(description="Minutes worked; negative only to correct an earlier entry.")
    note: str
    work_date: date | None = strawberry.field(default=None, description="The day worked; today by default.")
    corrects_entry_id: strawberry.ID | None = strawberry.field(
        default=None, description="The time entry a negative entry corrects."
    )


@strawberry.type
class FileTicketSuccess:
    ticket: TicketType | None = strawberry.field(
        description="The ticket filed; null when it is outside what the caller may read (a client manager "
        "filing under a contract not assigned to them)."
    )
    ticket_id: strawberry.ID


@strawberry.type
class TransitionTicketSuccess:
    ticket: TicketType


@strawberry.type
class AddCommentSuccess:
    ticket: TicketType
    comment_id: strawberry.ID


@strawberry.type
class LogTimeSuccess:
    ticket: TicketType
    time_entry_id: strawberry.ID
    deductions: list[LedgerEntryType] = strawberry.field(
        description="The ledger entries this entry posted (none when the ticket already owed as much)."
    )


FileTicketResult = result_union(
    "FileTicketResult",
    FileTicketSuccess,
    ValidationError,
    NotFoundError,
    OutOfScopeError,
    PartnerNotEligibleError,
    PermissionDeniedError,
)


TransitionTicketResult = result_union(
    "TransitionTicketResult", TransitionTicketSuccess, ValidationError, NotFoundError, PermissionDeniedError
)


AddCommentResult = result_union(
    "AddCommentResult",
    AddCommentSuccess,
    ValidationError,
    NotFoundError,
    ConflictError,
    InsufficientBalanceError,
    ContractInactiveError,
    PermissionDeniedError,
)


LogTimeResult = result_union(
    "LogTimeResult",
    LogTimeSuccess,
    ValidationError,
    NotFoundError,
    ConflictError,
    InsufficientBalanceError,
    ContractInactiveError,
    PermissionDeniedError,
)


async def _ticket(ctx: RequestContext, actor: Actor, ticket_id: uuid.UUID) -> TicketType | None:
    """The ticket as the caller now sees it, after a change committed."""
    found = await tickets.get_tickets(ctx.app, actor, [ticket_id])
    return TicketType.build(found[ticket_id]) if ticket_id in found else None


async def _changed_ticket(ctx: RequestContext, ticket_id: uuid.UUID) -> TicketType:
    # Every change but filing needs the ticket in the caller's reach, so it is still there afterwards.
    ticket = await _ticket(ctx, ctx.actor, ticket_id)
    if ticket is None:  # pragma: no cover - the service found it in the same caller's reach
        raise NotFound("ticket", ticket_id, field="ticketId")
    return ticket


@strawberry.type
class TicketQuery:
    @strawberry.field
    async def ticket(self, info: Info[RequestContext, None], id: strawberry.ID) -> TicketType | None:
        ctx = info.context
        ident = parse_id(id)
        if ident is None:
            return None
        found = await tickets.get_tickets(ctx.app, ctx.actor, [ident])
        ctx.loaders.read_tickets(found.values())
        return TicketType.build(found[ident]) if ident in found else None

    @strawberry.field(description="The tickets the caller may see, newest first.")
    async def tickets(
        self,
        info: Info[RequestContext, None],
        filter: TicketFilter | None = None,
        first: int = 50,
        after: str | None = None,
    ) -> TicketConnection:
        ctx = info.context
        given = filter or TicketFilter()
        customer = None
        if given.customer_id is not None:
            customer = parse_id(given.customer_id)
            if customer is None:
                # Not an id this API gave out: answered as a customer without tickets.
                return TicketConnection(edges=[], page_info=PageInfo(has_next_page=False, end_cursor=None))
        page = await tickets.list_tickets(
            ctx.app,
            ctx.actor,
            customer_id=customer,
            status=given.status,
            severity=given.severity,
            ticket_type=given.ticket_type,
            filed_by=given.filed_by,
            text=given.text,
            at_risk=given.at_risk,
            breached=given.breached,
            first=first,
            after=after,
        )
        ctx.loaders.read_tickets(page.views)
        return TicketConnection(
            edges=[TicketEdge(cursor=tickets.ticket_cursor(v.ticket), node=TicketType.build(v)) for v in page.views],
            page_info=PageInfo.of(page),
        )


@strawberry.type
class TicketMutation:
    @mutation(
        description="File a ticket for a customer: the plan must offer its type and severity, the request must be "
        "in scope, and diagnostic types need the affected account, the steps followed and the expected result."
    )
    async def file_ticket(self, info: Info[RequestContext, None], input: FileTicketInput) -> FileTicketResult:
        ctx = info.context
        ticket = await tickets.open_ticket(
            ctx.app,
            ctx.actor,
            tickets.NewTicket(
                customer_id=require_id(input.customer_id, "customer", "customerId"),
                ticket_type=input.ticket_type,
                severity=input.severity,
                subject=input.subject,
                description=input.description,
                affected_account=input.affected_account,
                steps_followed=input.steps_followed,
                expected_result=input.expected_result,
                scope_item=input.scope_item,
            ),
        )
        return FileTicketSuccess(
            ticket=await _ticket(ctx, ctx.actor, ticket.id), ticket_id=strawberry.ID(str(ticket.id))
        )

    @mutation(
        description="Move a ticket to another status. Staff make every move; the customer and its partners may "
        "close a resolved ticket or reopen it."
    )
    async def transition_ticket(
        self, info: Info[RequestContext, None], input: TransitionTicketInput
    ) -> TransitionTicketResult:
        ctx = info.context
        ticket = await tickets.transition_ticket(
            ctx.app,
            ctx.actor,
            require_id(input.ticket_id, "ticket", "ticketId"),
            input.to,
            reason=input.reason,
            next_update_at=input.next_update_at,
        )
        return TransitionTicketSuccess(ticket=await _changed_ticket(ctx, ticket.id))

    @mutation(
        description="Add a message to a ticket. A public staff reply opens the conversation and deducts its "
        "support time, or is refused with it."
    )
    async def add_comment(self, info: Info[RequestContext, None], input: AddCommentInput) -> AddCommentResult:
        ctx = info.context
        comment = await tickets.add_comment(
            ctx.app,
            ctx.actor,
            require_id(input.ticket_id, "ticket", "ticketId"),
            input.body,
            internal=input.internal,
            next_update_at=input.next_update_at,
        )
        return AddCommentSuccess(
            ticket=await _changed_ticket(ctx, comment.ticket_id), comment_id=strawberry.ID(str(comment.id))
        )

    @mutation(
        description="Log minutes worked on a ticket (staff), or correct an earlier entry with a negative one; "
        "the ticket's support-time deductions follow in the same transaction."
    )
    async def log_time(self, info: Info[RequestContext, None], input: LogTimeInput) -> LogTimeResult:
        ctx = info.context
        entry, posted = await deductions.log_time(
            ctx.app,
            ctx.actor,
            require_id(input.ticket_id, "ticket", "ticketId"),
            input.minutes,
            note=input.note,
            work_date=input.work_date,
            corrects_entry_id=optional_id(input.corrects_entry_id, "time entry", "correctsEntryId"),
        )
        return LogTimeSuccess(
            ticket=await _changed_ticket(ctx, entry.ticket_id),
            time_entry_id=strawberry.ID(str(entry.id)),
            deductions=[LedgerEntryType.build(e) for e in posted],
        )

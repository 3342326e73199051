"""Queries. Resolvers translate arguments and results; every rule, including who sees what, is in api.services."""

from __future__ import annotations

import uuid
from datetime import date

import strawberry
from strawberry.types import Info

from api.graphql.context import RequestContext, parse_id
from api.graphql.types import (
    ActivityType,
    ApiTokenType,
    BookingConnection,
    BookingStatusEnum,
    BookingType,
    AuditEntryConnection,
    AuditEntryEdge,
    AuditEntryType,
    ContractType,
    CustomerType,
    FilingCheckType,
    OpenWindowType,
    TicketConnection,
    TicketEdge,
    TicketType,
    PageInfo,
    PartnerType,
    ProgramType,
    ScopeItemType,
    UserType,
    ViewerType,
    opt_id,
)
from api.services import access, audit, bookings, contracts, identity, parties, programs, tickets
from api.services.errors import DomainError, NotFound
from api.services.paging import encode_cursor

__all__ = ["Query"]


def _customer_id(value: strawberry.ID) -> uuid.UUID:
    parsed = parse_id(value)
    if parsed is None:
        raise NotFound("customer", value, field="customerId")
    return parsed


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


@strawberry.input(description="Narrows `bookings`; every given condition must hold.")
class BookingFilter:
    contract_id: strawberry.ID | None = None
    customer_id: strawberry.ID | None = None
    status: BookingStatusEnum | None = None


@strawberry.type
class Query:
    @strawberry.field(description="Every loaded program with its plans.")
    async def programs(self, info: Info[RequestContext, None]) -> list[ProgramType]:
        ctx = info.context
        return [ProgramType.build(r, plans) for r, plans in await programs.list_programs(ctx.app, ctx.actor)]

    @strawberry.field
    async def program(self, info: Info[RequestContext, None], code: str) -> ProgramType | None:
        ctx = info.context
        found = await programs.list_programs(ctx.app, ctx.actor, code=code)
        return ProgramType.build(*found[0]) if found else None

    @strawberry.field(description="The customers the caller may see.")
    async def customers(self, info: Info[RequestContext, None]) -> list[CustomerType]:
        ctx = info.context
        return [CustomerType.build(c) for c in await parties.list_customers(ctx.app, ctx.actor)]

    @strawberry.field
    async def customer(self, info: Info[RequestContext, None], id: strawberry.ID) -> CustomerType | None:
        ident = parse_id(id)
        customer = None if ident is None else await info.context.loaders.customer.load(ident)
        return None if customer is None else CustomerType.build(customer)

    @strawberry.field
    async def partners(self, info: Info[RequestContext, None]) -> list[PartnerType]:
        ctx = info.context
        return [PartnerType.build(p) for p in await parties.list_partners(ctx.app, ctx.actor)]

    @strawberry.field(description="The contracts the caller may see, by reference; optionally one customer's.")
    async def contracts(
        self, info: Info[RequestContext, None], customer_id: strawberry.ID | None = None
    ) -> list[ContractType]:
        ctx = info.context
        customer = None
        if customer_id is not None:
            customer = parse_id(customer_id)
            if customer is None:
                return []
        found = await contracts.list_contracts(ctx.app, ctx.actor, customer_id=customer)
        return [ContractType.build(c) for c in found]

    @strawberry.field
    async def contract(self, info: Info[RequestContext, None], id: strawberry.ID) -> ContractType | None:
        ctx = info.context
        ident = parse_id(id)
        if ident is None:
            return None
        found = await contracts.get_contracts_by_ids(ctx.app, ctx.actor, [ident])
        return ContractType.build(found[ident]) if ident in found else None

    @strawberry.field(description="Who the caller is, as the access policy sees it.")
    def me(self, info: Info[RequestContext, None]) -> ViewerType:
        actor = info.context.actor
        return ViewerType(
            kind=actor.kind,
            name=actor.name,
            roles=sorted(actor.roles),
            customer_id=opt_id(actor.customer_id),
            partner_id=opt_id(actor.partner_id),
            read_only=actor.read_only,
        )

    @strawberry.field(description="Users (admins only).")
    async def users(self, info: Info[RequestContext, None]) -> list[UserType]:
        ctx = info.context
        return [UserType.build(u) for u in await identity.list_users(ctx.app, ctx.actor)]

    @strawberry.field(description="API tokens, without their secrets (admins only).")
    async def api_tokens(self, info: Info[RequestContext, None]) -> list[ApiTokenType]:
        ctx = info.context
        return [ApiTokenType.build(t) for t in await identity.list_tokens(ctx.app, ctx.actor)]

    @strawberry.field(description="The audit log, newest first (staff only).")
    async def audit_log(
        self,
        info: Info[RequestContext, None],
        first: int = 50,
        after: str | None = None,
        customer_id: strawberry.ID | None = None,
        action: str | None = None,
    ) -> AuditEntryConnection:
        ctx = info.context
        page = await audit.audit_page(
            ctx.app,
            ctx.actor,
            first=first,
            after=after,
            customer_id=None if customer_id is None else _customer_id(customer_id),
            action=action,
        )
        return AuditEntryConnection(
            edges=[AuditEntryEdge(cursor=encode_cursor(e.occurred_at, e.id), node=AuditEntryType.build(e)) for e in page.entries],
            page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor),
        )

    @strawberry.field(description="What is out of scope or out of support for a customer, each item with its source.")
    async def out_of_scope(
        self, info: Info[RequestContext, None], customer_id: strawberry.ID, on: date | None = None
    ) -> list[ScopeItemType] | None:
        ctx = info.context
        ident = parse_id(customer_id)
        if ident is None:
            return None
        try:
            entries = await access.out_of_scope(ctx.app, ctx.actor, ident, on)
        except NotFound:
            return None
        return [
            ScopeItemType(
                code=e.code,
                text=e.text,
                list=e.list,
                source=e.source,
                source_name=e.source_name,
                program_code=e.program_code,
            )
            for e in entries
        ]

    @strawberry.field(description="Whether the caller may file a ticket of this type for the customer, and if not why.")
    async def check_filing(
        self, info: Info[RequestContext, None], customer_id: strawberry.ID, ticket_type: str, on: date | None = None
    ) -> FilingCheckType:
        ctx = info.context
        try:
            decision = await access.check_filing(ctx.app, ctx.actor, _customer_id(customer_id), ticket_type, on)
        except DomainError as exc:
            return FilingCheckType(allowed=False, code=exc.code, reason=exc.message, contract_id=None)
        return FilingCheckType(allowed=True, code=None, reason=None, contract_id=opt_id(decision.contract_id))

    @strawberry.field
    async def ticket(self, info: Info[RequestContext, None], id: strawberry.ID) -> TicketType | None:
        ctx = info.context
        ident = parse_id(id)
        if ident is None:
            return None
        found = await tickets.get_tickets(ctx.app, ctx.actor, [ident])
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
        return TicketConnection(
            edges=[TicketEdge(cursor=tickets.ticket_cursor(v.ticket), node=TicketType.build(v)) for v in page.views],
            page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor),
        )

    @strawberry.field(
        description="A program's activity catalog; with `planCode`, what that plan offers, each activity with the "
        "bucket it is charged to and what one booking costs. Null for an unknown program or plan."
    )
    async def activity_catalog(
        self, info: Info[RequestContext, None], program_code: str, plan_code: str | None = None
    ) -> list[ActivityType] | None:
        ctx = info.context
        try:
            items = await bookings.activity_catalog(ctx.app, ctx.actor, program_code, plan_code)
        except NotFound:
            return None
        return [ActivityType.build(item.code, item.activity, item.offer) for item in items]

    @strawberry.field(description="The bookings the caller may see, newest first.")
    async def bookings(
        self,
        info: Info[RequestContext, None],
        filter: BookingFilter | None = None,
        first: int = 50,
        after: str | None = None,
    ) -> BookingConnection:
        ctx = info.context
        given = filter or BookingFilter()
        ids = {name: parse_id(value) for name, value in (("contract", given.contract_id), ("customer", given.customer_id))
               if value is not None}
        if None in ids.values():
            # Not an id this API gave out: answered as an object without bookings.
            return BookingConnection(edges=[], page_info=PageInfo(has_next_page=False, end_cursor=None))
        page = await bookings.list_bookings(
            ctx.app, ctx.actor, contract_id=ids.get("contract"), customer_id=ids.get("customer"), status=given.status,
            first=first, after=after,
        )
        return BookingConnection.build(page)

    @strawberry.field
    async def booking(self, info: Info[RequestContext, None], id: strawberry.ID) -> BookingType | None:
        ctx = info.context
        ident = parse_id(id)
        if ident is None:
            return None
        found = await bookings.get_bookings(ctx.app, ctx.actor, [ident])
        return BookingType.build(found[ident]) if ident in found else None

    @strawberry.field(description="When a program's support calendar is open, day by day in its own time zone.")
    async def calendar_windows(
        self,
        info: Info[RequestContext, None],
        program_code: str,
        calendar: str,
        from_date: date,
        to_date: date,
    ) -> list[OpenWindowType]:
        ctx = info.context
        windows = await tickets.calendar_windows(ctx.app, ctx.actor, program_code, calendar, from_date, to_date)
        return [OpenWindowType(start=start, end=end) for start, end in windows]

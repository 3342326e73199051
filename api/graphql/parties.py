"""GraphQL of parties: customers, partners and their links, correspondents, what is out of scope, filing checks."""

from __future__ import annotations

import enum
from datetime import date

import strawberry
import strawberry.scalars
from strawberry.types import Info

from api.graphql.context import RequestContext
from api.graphql.errors import (
    ConflictError,
    ErrorCodeEnum,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
    mutation,
    result_union,
)
from api.graphql.ids import opt_id, parse_id, require_id
from api.graphql.paging import PageInfo
from api.graphql.rows import from_row
from api.models import Customer, Partner
from api.services import access, parties
from api.services.errors import DomainError, NotFound

__all__ = [
    "CorrespondentKind",
    "CorrespondentType",
    "CreateCustomerInput",
    "CreateCustomerResult",
    "CreateCustomerSuccess",
    "CreatePartnerInput",
    "CreatePartnerResult",
    "CreatePartnerSuccess",
    "CustomerConnection",
    "CustomerEdge",
    "CustomerType",
    "FilingCheckType",
    "LinkPartnerInput",
    "LinkPartnerResult",
    "LinkPartnerSuccess",
    "PartnerType",
    "PartyMutation",
    "PartyQuery",
    "ScopeItemType",
    "StaffMemberType",
]


@strawberry.type(name="StaffMember")
class StaffMemberType:
    name: str
    email: str


@strawberry.enum(description="Who the provider writes to about a customer.")
class CorrespondentKind(enum.Enum):
    CUSTOMER = "customer"
    PARTNER = "partner"


@strawberry.type(
    name="Correspondent",
    description="Where replies, notifications and reports about a customer go: its managing partner, if any.",
)
class CorrespondentType:
    kind: CorrespondentKind
    name: str
    email: str | None
    partner_id: strawberry.ID | None


@strawberry.type(name="Customer")
class CustomerType:
    id: strawberry.ID
    code: str
    name: str
    email: str | None
    country: str | None
    report_contacts: list[str] = strawberry.field(
        description="Who receives the monthly report; empty: the customer's own address. A managed customer's "
        "reports go to its partner instead."
    )

    @strawberry.field
    async def correspondent(self, info: Info[RequestContext, None]) -> CorrespondentType:
        ctx = info.context
        found = await access.correspondent(ctx.app, ctx.actor, parse_id(self.id))
        return CorrespondentType(
            kind=CorrespondentKind(found.kind),
            name=found.name,
            email=found.email,
            partner_id=None if found.partner_id is None else strawberry.ID(str(found.partner_id)),
        )

    @classmethod
    def build(cls, customer: Customer) -> CustomerType:
        return from_row(cls, customer, report_contacts=list(customer.report_contacts or []))


@strawberry.type(name="Partner")
class PartnerType:
    id: strawberry.ID
    code: str
    name: str
    email: str | None
    certified_until_date: date | None

    @classmethod
    def build(cls, partner: Partner) -> PartnerType:
        return from_row(cls, partner)


@strawberry.type(name="ScopeItem", description="Something the provider does not do, and where the rule comes from.")
class ScopeItemType:
    code: str
    text: str
    list: str = strawberry.field(description="out_of_scope or out_of_support")
    source: str = strawberry.field(description="plan, program or partner_program")
    source_name: str
    program_code: str


@strawberry.type(name="FilingCheck", description="Whether the caller may file a ticket of a type for a customer.")
class FilingCheckType:
    allowed: bool
    code: ErrorCodeEnum | None = strawberry.field(description="The refusal's error code when not allowed.")
    reason: str | None
    contract_id: strawberry.ID | None


@strawberry.input
class CreateCustomerInput:
    code: str
    name: str
    email: str | None = None
    country: str | None = strawberry.field(default=None, description="ISO 3166 alpha-2, e.g. DK")


@strawberry.input
class CreatePartnerInput:
    code: str
    name: str
    email: str | None = None
    certified_until_date: date | None = None


@strawberry.input
class LinkPartnerInput:
    partner_id: strawberry.ID
    customer_id: strawberry.ID
    managed: bool = strawberry.field(default=True, description="The partner intermediates all communication.")
    production_access: bool = False
    can_file_tickets: bool = True
    can_view_entitlements: bool = True
    can_book_activities: bool = False


@strawberry.type
class CreateCustomerSuccess:
    customer: CustomerType


@strawberry.type
class CreatePartnerSuccess:
    partner: PartnerType


@strawberry.type
class LinkPartnerSuccess:
    partner_id: strawberry.ID
    customer_id: strawberry.ID
    managed: bool
    production_access: bool
    can_file_tickets: bool
    can_view_entitlements: bool
    can_book_activities: bool


CreateCustomerResult = result_union(
    "CreateCustomerResult", CreateCustomerSuccess, ValidationError, ConflictError, PermissionDeniedError
)


CreatePartnerResult = result_union(
    "CreatePartnerResult", CreatePartnerSuccess, ValidationError, ConflictError, PermissionDeniedError
)


LinkPartnerResult = result_union("LinkPartnerResult", LinkPartnerSuccess, NotFoundError, PermissionDeniedError)


@strawberry.input(description="Replaces who receives a customer's monthly reports.")
class SetReportContactsInput:
    customer_id: strawberry.ID
    emails: list[str] = strawberry.field(description="At most 20 addresses; an empty list: the customer's own.")


@strawberry.type
class SetReportContactsSuccess:
    customer: CustomerType


SetReportContactsResult = result_union(
    "SetReportContactsResult", SetReportContactsSuccess, ValidationError, NotFoundError, PermissionDeniedError
)


@strawberry.type
class CustomerEdge:
    cursor: str
    node: CustomerType


@strawberry.type
class CustomerConnection:
    edges: list[CustomerEdge]
    page_info: PageInfo


@strawberry.type
class PartyQuery:
    @strawberry.field(
        description="The customers the caller may see, by code, a page at a time; optionally those whose code "
        "starts with `search` or whose name contains it."
    )
    async def customers(
        self, info: Info[RequestContext, None], search: str | None = None, first: int = 50, after: str | None = None
    ) -> CustomerConnection:
        ctx = info.context
        page = await parties.page_customers(ctx.app, ctx.actor, search=search, first=first, after=after)
        return CustomerConnection(
            edges=[CustomerEdge(cursor=parties.customer_cursor(c), node=CustomerType.build(c)) for c in page.items],
            page_info=PageInfo.of(page),
        )

    @strawberry.field
    async def customer(self, info: Info[RequestContext, None], id: strawberry.ID) -> CustomerType | None:
        ident = parse_id(id)
        customer = None if ident is None else await info.context.loaders.customer.load(ident)
        return None if customer is None else CustomerType.build(customer)

    @strawberry.field
    async def partners(self, info: Info[RequestContext, None]) -> list[PartnerType]:
        ctx = info.context
        return [PartnerType.build(p) for p in await parties.list_partners(ctx.app, ctx.actor)]

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
            decision = await access.check_filing(
                ctx.app, ctx.actor, require_id(customer_id, "customer", "customerId"), ticket_type, on
            )
        except DomainError as exc:
            return FilingCheckType(allowed=False, code=exc.code, reason=exc.message, contract_id=None)
        return FilingCheckType(allowed=True, code=None, reason=None, contract_id=opt_id(decision.contract_id))


@strawberry.type
class PartyMutation:
    @mutation
    async def create_customer(
        self, info: Info[RequestContext, None], input: CreateCustomerInput
    ) -> CreateCustomerResult:
        ctx = info.context
        customer = await parties.create_customer(
            ctx.app,
            ctx.actor,
            parties.NewCustomer(code=input.code, name=input.name, email=input.email, country=input.country),
        )
        return CreateCustomerSuccess(customer=CustomerType.build(customer))

    @mutation
    async def create_partner(self, info: Info[RequestContext, None], input: CreatePartnerInput) -> CreatePartnerResult:
        ctx = info.context
        partner = await parties.create_partner(
            ctx.app,
            ctx.actor,
            parties.NewPartner(
                code=input.code,
                name=input.name,
                email=input.email,
                certified_until_date=input.certified_until_date,
            ),
        )
        return CreatePartnerSuccess(partner=PartnerType.build(partner))

    @mutation(description="Link a partner to a customer it manages or works with; linking again updates.")
    async def link_partner(self, info: Info[RequestContext, None], input: LinkPartnerInput) -> LinkPartnerResult:
        ctx = info.context
        link = await parties.link_partner(
            ctx.app,
            ctx.actor,
            partner_id=require_id(input.partner_id, "partner", "partnerId"),
            customer_id=require_id(input.customer_id, "customer", "customerId"),
            managed=input.managed,
            production_access=input.production_access,
            can_file_tickets=input.can_file_tickets,
            can_view_entitlements=input.can_view_entitlements,
            can_book_activities=input.can_book_activities,
        )
        return LinkPartnerSuccess(
            partner_id=strawberry.ID(str(link.partner_id)),
            customer_id=strawberry.ID(str(link.customer_id)),
            managed=link.managed,
            production_access=link.production_access,
            can_file_tickets=link.can_file_tickets,
            can_view_entitlements=link.can_view_entitlements,
            can_book_activities=link.can_book_activities,
        )

    @mutation(description="Set who receives a customer's monthly reports (admins, integrators, its client manager).")
    async def set_report_contacts(
        self, info: Info[RequestContext, None], input: SetReportContactsInput
    ) -> SetReportContactsResult:
        ctx = info.context
        customer = await parties.set_report_contacts(
            ctx.app, ctx.actor, require_id(input.customer_id, "customer", "customerId"), input.emails
        )
        return SetReportContactsSuccess(customer=CustomerType.build(customer))

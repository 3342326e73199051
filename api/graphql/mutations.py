"""Mutations: each validates its input shape, calls one service function, and returns its success type
or a typed error. Every rule lives in api.services."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated

import strawberry
from strawberry.types import Info

from api.graphql.context import RequestContext, parse_id
from api.graphql.errors import (
    ActivityNotInCatalogError,
    BookingDateError,
    ConflictError,
    ContractInactiveError,
    ErrorCodeEnum,
    InsufficientBalanceError,
    NotFoundError,
    OutOfScopeError,
    PartnerNotEligibleError,
    PeriodEndedError,
    PermissionDeniedError,
    UserError,
    ValidationError,
    user_error,
)
from api.graphql.types import (
    ApiTokenType,
    BookingType,
    CalendarFeedType,
    ContractType,
    CustomerType,
    EntitlementPeriodType,
    LedgerEntryType,
    PartnerType,
    ProgramType,
    TicketType,
    UserType,
)
from api.models import StaffRole, TokenAccess, TokenScope, UserKind
from api.programs.loader import ProgramFileError, parse_program
from api.services import (
    bookings,
    calendar_feeds,
    contracts,
    deductions,
    identity,
    ledger,
    parties,
    programs,
    tickets,
)
from api.services.context import Actor
from api.services.errors import DomainError, ErrorCode, NotFound, ValidationFailed

__all__ = ["Mutation"]


def _id(value: strawberry.ID, what: str, field: str) -> uuid.UUID:
    parsed = parse_id(value)
    if parsed is None:
        raise NotFound(what, value, field=field)
    return parsed


def _optional_id(value: strawberry.ID | None, what: str, field: str) -> uuid.UUID | None:
    return None if value is None else _id(value, what, field)


UserKindEnum = strawberry.enum(UserKind, name="UserKind")
StaffRoleEnum = strawberry.enum(StaffRole, name="StaffRole")
TokenScopeEnum = strawberry.enum(TokenScope, name="TokenScope")
TokenAccessEnum = strawberry.enum(TokenAccess, name="TokenAccess")


# ---- inputs ----


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


@strawberry.input
class CustomAllowanceInput:
    bucket: str
    allowance: int = strawberry.field(description="Per period, in ledger units (activities, or minutes).")


@strawberry.input
class CreateContractInput:
    reference: str
    customer_id: strawberry.ID
    program_code: str
    plan_code: str
    effective_date: date
    end_date: date = strawberry.field(description="The last day of the term (inclusive).")
    monthly_fee: Decimal
    currency: str
    custom_allowances: list[CustomAllowanceInput] = strawberry.field(default_factory=list)
    client_manager_email: str | None = strawberry.field(
        default=None, description="The e-mail address of the staff member who manages the contract."
    )
    catalog: list[str] | None = strawberry.field(
        default=None,
        description="The activities listed on the order, from the plan's catalog; leave out to offer all of it.",
    )


@strawberry.input
class ConsumeEntitlementInput:
    contract_id: strawberry.ID
    bucket: str
    quantity: Decimal = strawberry.field(description="In ledger units: activities, or minutes for hours buckets.")
    on: date | None = strawberry.field(default=None, description="The day the work belongs to; today by default.")
    reason: str = ""
    idempotency_key: str | None = strawberry.field(
        default=None, description="Repeat a request with the same key to get the first result back."
    )
    on_behalf_of_customer_id: strawberry.ID | None = None


@strawberry.input
class ReverseEntryInput:
    entry_id: strawberry.ID
    reason: str
    idempotency_key: str | None = None


@strawberry.input
class AdjustEntitlementInput:
    contract_id: strawberry.ID
    bucket: str
    quantity: Decimal = strawberry.field(description="Signed, in ledger units: positive consumes, negative restores.")
    on: date
    reason: str
    idempotency_key: str | None = None


@strawberry.input
class LoadProgramInput:
    source: str = strawberry.field(description="The program file's TOML text.")
    file_name: str = "program.toml"


@strawberry.input
class CreateUserInput:
    email: str
    name: str
    password: str = strawberry.field(description="At least 12 characters; stored only as an argon2 hash.")
    kind: UserKindEnum
    staff_role: StaffRoleEnum | None = None
    customer_id: strawberry.ID | None = None
    partner_id: strawberry.ID | None = None


@strawberry.input
class CreateApiTokenInput:
    name: str
    scope: TokenScopeEnum
    access: TokenAccessEnum
    customer_id: strawberry.ID | None = None
    partner_id: strawberry.ID | None = None
    expires_at: datetime | None = None


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
    to: str = strawberry.field(
        description="new, acknowledged, in_progress, waiting_on_customer, resolved or closed."
    )
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


@strawberry.input(description="An activity requested for a contract, charged to the period containing `on`.")
class BookActivityInput:
    contract_id: strawberry.ID
    activity: str = strawberry.field(description="A code of the contract's activity catalog.")
    on: date = strawberry.field(
        description="The day wanted (today or later, within the term): the booking is charged to the period "
        "containing it, and is scheduled inside that period."
    )
    note: str = strawberry.field(default="", description="What the customer wants from it, for the client manager.")
    partner_ids: list[strawberry.ID] = strawberry.field(
        default_factory=list, description="Solution partners to take part, where the customer allows it."
    )
    idempotency_key: str | None = strawberry.field(
        default=None, description="Repeat a request with the same key to get the first booking back."
    )


@strawberry.input(description="When a booked activity takes place and who delivers it; also moves a scheduled one.")
class ScheduleBookingInput:
    booking_id: strawberry.ID
    starts_at: datetime = strawberry.field(
        description="With its time zone; on a day of the period the booking is charged to."
    )
    duration_minutes: int | None = strawberry.field(
        default=None, description="15 to 1440; by default the activity's hours, or 60 minutes."
    )
    staff_email: str | None = strawberry.field(
        default=None, description="The staff member who delivers it; by default the contract's client manager."
    )
    partner_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Replaces the partners taking part; left out, they stay as they are."
    )


@strawberry.input
class DeliverBookingInput:
    booking_id: strawberry.ID
    note: str = strawberry.field(default="", description="What was delivered.")


@strawberry.input
class CancelBookingInput:
    booking_id: strawberry.ID
    reason: str = ""


@strawberry.input
class CreateCalendarFeedInput:
    contract_id: strawberry.ID
    name: str = strawberry.field(default="", description="A label to tell feeds apart.")


# ---- payloads ----


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


@strawberry.type
class CreateContractSuccess:
    contract: ContractType


@strawberry.type(description="A ledger movement and the balance of its period afterwards.")
class LedgerEntrySuccess:
    entry: LedgerEntryType
    period: EntitlementPeriodType
    replayed: bool = strawberry.field(description="True when an idempotency key returned an earlier result.")


@strawberry.type
class LoadProgramSuccess:
    program: ProgramType
    status: str = strawberry.field(description="created, updated or unchanged")


@strawberry.type
class ProgramIssue:
    file: str
    key: str
    reason: str


@strawberry.type(description="The program file was refused as a whole; nothing was loaded.")
class ProgramFileInvalid(UserError):
    issues: list[ProgramIssue]


@strawberry.type
class CreateUserSuccess:
    user: UserType


@strawberry.type
class CreateApiTokenSuccess:
    token: ApiTokenType
    secret: str = strawberry.field(description="The bearer token. Shown this once; only its hash is kept.")


@strawberry.type
class RevokeApiTokenSuccess:
    token: ApiTokenType


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


@strawberry.type(description="A booking and the balance of the period it is charged to afterwards.")
class BookingSuccess:
    booking: BookingType
    period: EntitlementPeriodType
    replayed: bool = strawberry.field(description="True when an idempotency key returned an earlier booking.")


@strawberry.type
class ScheduleBookingSuccess:
    booking: BookingType


@strawberry.type
class DeliverBookingSuccess:
    booking: BookingType


@strawberry.type
class CreateCalendarFeedSuccess:
    feed: CalendarFeedType
    url: str = strawberry.field(
        description="The feed's secret address for a calendar application. Shown this once; only its hash is kept."
    )


@strawberry.type
class RevokeCalendarFeedSuccess:
    feed: CalendarFeedType


_AUTH = PermissionDeniedError
CreateCustomerResult = Annotated[
    CreateCustomerSuccess | ValidationError | ConflictError | _AUTH, strawberry.union("CreateCustomerResult")
]
CreatePartnerResult = Annotated[
    CreatePartnerSuccess | ValidationError | ConflictError | _AUTH, strawberry.union("CreatePartnerResult")
]
LinkPartnerResult = Annotated[LinkPartnerSuccess | NotFoundError | _AUTH, strawberry.union("LinkPartnerResult")]
CreateContractResult = Annotated[
    CreateContractSuccess | ValidationError | NotFoundError | ConflictError | _AUTH,
    strawberry.union("CreateContractResult"),
]
ConsumeEntitlementResult = Annotated[
    LedgerEntrySuccess
    | ValidationError
    | NotFoundError
    | ConflictError
    | InsufficientBalanceError
    | PeriodEndedError
    | ContractInactiveError
    | _AUTH,
    strawberry.union("ConsumeEntitlementResult"),
]
ReverseEntryResult = Annotated[
    LedgerEntrySuccess | ValidationError | NotFoundError | ConflictError | _AUTH,
    strawberry.union("ReverseEntryResult"),
]
AdjustEntitlementResult = Annotated[
    LedgerEntrySuccess
    | ValidationError
    | NotFoundError
    | ConflictError
    | InsufficientBalanceError
    | ContractInactiveError
    | _AUTH,
    strawberry.union("AdjustEntitlementResult"),
]
LoadProgramResult = Annotated[
    LoadProgramSuccess | ProgramFileInvalid | ValidationError | ConflictError | _AUTH,
    strawberry.union("LoadProgramResult"),
]


CreateUserResult = Annotated[
    CreateUserSuccess | ValidationError | NotFoundError | ConflictError | _AUTH, strawberry.union("CreateUserResult")
]
CreateApiTokenResult = Annotated[
    CreateApiTokenSuccess | ValidationError | NotFoundError | _AUTH, strawberry.union("CreateApiTokenResult")
]
RevokeApiTokenResult = Annotated[
    RevokeApiTokenSuccess | NotFoundError | _AUTH, strawberry.union("RevokeApiTokenResult")
]

FileTicketResult = Annotated[
    FileTicketSuccess | ValidationError | NotFoundError | OutOfScopeError | PartnerNotEligibleError | _AUTH,
    strawberry.union("FileTicketResult"),
]
TransitionTicketResult = Annotated[
    TransitionTicketSuccess | ValidationError | NotFoundError | _AUTH, strawberry.union("TransitionTicketResult")
]
AddCommentResult = Annotated[
    AddCommentSuccess
    | ValidationError
    | NotFoundError
    | ConflictError
    | InsufficientBalanceError
    | ContractInactiveError
    | _AUTH,
    strawberry.union("AddCommentResult"),
]
LogTimeResult = Annotated[
    LogTimeSuccess
    | ValidationError
    | NotFoundError
    | ConflictError
    | InsufficientBalanceError
    | ContractInactiveError
    | _AUTH,
    strawberry.union("LogTimeResult"),
]


BookActivityResult = Annotated[
    BookingSuccess
    | ValidationError
    | NotFoundError
    | ConflictError
    | ActivityNotInCatalogError
    | BookingDateError
    | InsufficientBalanceError
    | _AUTH,
    strawberry.union("BookActivityResult"),
]
ScheduleBookingResult = Annotated[
    ScheduleBookingSuccess | ValidationError | NotFoundError | ConflictError | BookingDateError | _AUTH,
    strawberry.union("ScheduleBookingResult"),
]
DeliverBookingResult = Annotated[
    DeliverBookingSuccess | ValidationError | NotFoundError | ConflictError | _AUTH,
    strawberry.union("DeliverBookingResult"),
]
CancelBookingResult = Annotated[
    BookingSuccess | ValidationError | NotFoundError | ConflictError | _AUTH, strawberry.union("CancelBookingResult")
]
CreateCalendarFeedResult = Annotated[
    CreateCalendarFeedSuccess | ValidationError | NotFoundError | _AUTH, strawberry.union("CreateCalendarFeedResult")
]
RevokeCalendarFeedResult = Annotated[
    RevokeCalendarFeedSuccess | NotFoundError | _AUTH, strawberry.union("RevokeCalendarFeedResult")
]


def _ids(values: list[strawberry.ID] | None, what: str, field: str) -> list[uuid.UUID] | None:
    return None if values is None else [_id(value, what, field) for value in values]


def _booking_success(outcome: bookings.BookingOutcome) -> BookingSuccess:
    return BookingSuccess(
        booking=BookingType.build(outcome.booking),
        period=EntitlementPeriodType.build(outcome.period),
        replayed=outcome.replayed,
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


def _ledger_success(outcome: ledger.LedgerOutcome) -> LedgerEntrySuccess:
    return LedgerEntrySuccess(
        entry=LedgerEntryType.build(outcome.entry),
        period=EntitlementPeriodType.build(outcome.period),
        replayed=outcome.replayed,
    )


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def create_customer(self, info: Info[RequestContext, None], input: CreateCustomerInput) -> CreateCustomerResult:
        ctx = info.context
        try:
            customer = await parties.create_customer(
                ctx.app,
                ctx.actor,
                parties.NewCustomer(code=input.code, name=input.name, email=input.email, country=input.country),
            )
        except DomainError as exc:
            return user_error(exc)
        return CreateCustomerSuccess(customer=CustomerType.build(customer))

    @strawberry.mutation
    async def create_partner(self, info: Info[RequestContext, None], input: CreatePartnerInput) -> CreatePartnerResult:
        ctx = info.context
        try:
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
        except DomainError as exc:
            return user_error(exc)
        return CreatePartnerSuccess(partner=PartnerType.build(partner))

    @strawberry.mutation(description="Link a partner to a customer it manages or works with; linking again updates.")
    async def link_partner(self, info: Info[RequestContext, None], input: LinkPartnerInput) -> LinkPartnerResult:
        ctx = info.context
        try:
            link = await parties.link_partner(
                ctx.app,
                ctx.actor,
                partner_id=_id(input.partner_id, "partner", "partnerId"),
                customer_id=_id(input.customer_id, "customer", "customerId"),
                managed=input.managed,
                production_access=input.production_access,
                can_file_tickets=input.can_file_tickets,
                can_view_entitlements=input.can_view_entitlements,
                can_book_activities=input.can_book_activities,
            )
        except DomainError as exc:
            return user_error(exc)
        return LinkPartnerSuccess(
            partner_id=strawberry.ID(str(link.partner_id)),
            customer_id=strawberry.ID(str(link.customer_id)),
            managed=link.managed,
            production_access=link.production_access,
            can_file_tickets=link.can_file_tickets,
            can_view_entitlements=link.can_view_entitlements,
            can_book_activities=link.can_book_activities,
        )

    @strawberry.mutation
    async def create_contract(self, info: Info[RequestContext, None], input: CreateContractInput) -> CreateContractResult:
        ctx = info.context
        try:
            allowances: dict[str, int] = {}
            for item in input.custom_allowances:
                if item.bucket in allowances:
                    raise ValidationFailed(f"bucket {item.bucket!r} is given twice", field="customAllowances")
                allowances[item.bucket] = item.allowance
            contract = await contracts.create_contract(
                ctx.app,
                ctx.actor,
                contracts.NewContract(
                    reference=input.reference,
                    customer_id=_id(input.customer_id, "customer", "customerId"),
                    program_code=input.program_code,
                    plan_code=input.plan_code,
                    effective_date=input.effective_date,
                    end_date=input.end_date,
                    monthly_fee=input.monthly_fee,
                    currency=input.currency,
                    custom_allowances=allowances,
                    client_manager_email=input.client_manager_email,
                    catalog=input.catalog,
                ),
            )
        except DomainError as exc:
            return user_error(exc)
        return CreateContractSuccess(contract=ContractType.build(contract))

    @strawberry.mutation(description="Consume from a bucket in the period containing `on`; refused past the allowance.")
    async def consume_entitlement(
        self, info: Info[RequestContext, None], input: ConsumeEntitlementInput
    ) -> ConsumeEntitlementResult:
        ctx = info.context
        try:
            on_behalf = input.on_behalf_of_customer_id
            outcome = await ledger.consume_entitlement(
                ctx.app,
                ctx.actor,
                ledger.Consumption(
                    contract_id=_id(input.contract_id, "contract", "contractId"),
                    bucket=input.bucket,
                    quantity=input.quantity,
                    on=input.on,
                    reason=input.reason,
                    idempotency_key=input.idempotency_key,
                    on_behalf_of_customer_id=None
                    if on_behalf is None
                    else _id(on_behalf, "customer", "onBehalfOfCustomerId"),
                ),
            )
        except DomainError as exc:
            return user_error(exc)
        return _ledger_success(outcome)

    @strawberry.mutation(description="Restore what an entry consumed to the period it was taken from.")
    async def reverse_entry(self, info: Info[RequestContext, None], input: ReverseEntryInput) -> ReverseEntryResult:
        ctx = info.context
        try:
            outcome = await ledger.reverse_entry(
                ctx.app,
                ctx.actor,
                _id(input.entry_id, "ledger entry", "entryId"),
                reason=input.reason,
                idempotency_key=input.idempotency_key,
            )
        except DomainError as exc:
            return user_error(exc)
        return _ledger_success(outcome)

    @strawberry.mutation(description="A staff correction of a period's consumption, within [0, allowance].")
    async def adjust_entitlement(
        self, info: Info[RequestContext, None], input: AdjustEntitlementInput
    ) -> AdjustEntitlementResult:
        ctx = info.context
        try:
            outcome = await ledger.adjust_entitlement(
                ctx.app,
                ctx.actor,
                ledger.Adjustment(
                    contract_id=_id(input.contract_id, "contract", "contractId"),
                    bucket=input.bucket,
                    quantity=input.quantity,
                    on=input.on,
                    reason=input.reason,
                    idempotency_key=input.idempotency_key,
                ),
            )
        except DomainError as exc:
            return user_error(exc)
        return _ledger_success(outcome)

    @strawberry.mutation(description="Load or update a program from its TOML text; a bad file loads nothing.")
    async def load_program(self, info: Info[RequestContext, None], input: LoadProgramInput) -> LoadProgramResult:
        ctx = info.context
        try:
            parsed = parse_program(input.source, file=input.file_name)
            [outcome] = await programs.load_programs(ctx.app, ctx.actor, [parsed])
            record, plans = await programs.get_program(ctx.app, ctx.actor, outcome.code)
        except ProgramFileError as exc:
            return ProgramFileInvalid(
                code=ErrorCodeEnum(ErrorCode.INVALID),
                message=str(exc),
                field="source",
                issues=[ProgramIssue(file=i.file, key=i.key, reason=i.reason) for i in exc.issues],
            )
        except DomainError as exc:
            return user_error(exc)
        return LoadProgramSuccess(program=ProgramType.build(record, plans), status=outcome.status)

    @strawberry.mutation(description="Create a user (admins only).")
    async def create_user(self, info: Info[RequestContext, None], input: CreateUserInput) -> CreateUserResult:
        ctx = info.context
        try:
            user = await identity.create_user(
                ctx.app,
                ctx.actor,
                identity.NewUser(
                    email=input.email,
                    name=input.name,
                    password=input.password,
                    kind=UserKind(input.kind.value),
                    staff_role=None if input.staff_role is None else StaffRole(input.staff_role.value),
                    customer_id=_optional_id(input.customer_id, "customer", "customerId"),
                    partner_id=_optional_id(input.partner_id, "partner", "partnerId"),
                ),
            )
        except DomainError as exc:
            return user_error(exc)
        return CreateUserSuccess(user=UserType.build(user))

    @strawberry.mutation(description="Create an API token (admins only); the secret is in the result, once.")
    async def create_api_token(
        self, info: Info[RequestContext, None], input: CreateApiTokenInput
    ) -> CreateApiTokenResult:
        ctx = info.context
        try:
            token, secret = await identity.create_token(
                ctx.app,
                ctx.actor,
                identity.NewToken(
                    name=input.name,
                    scope=TokenScope(input.scope.value),
                    access=TokenAccess(input.access.value),
                    customer_id=_optional_id(input.customer_id, "customer", "customerId"),
                    partner_id=_optional_id(input.partner_id, "partner", "partnerId"),
                    expires_at=input.expires_at,
                ),
            )
        except DomainError as exc:
            return user_error(exc)
        return CreateApiTokenSuccess(token=ApiTokenType.build(token), secret=secret)

    @strawberry.mutation(description="Revoke an API token (admins only); it stops working at once.")
    async def revoke_api_token(self, info: Info[RequestContext, None], id: strawberry.ID) -> RevokeApiTokenResult:
        ctx = info.context
        try:
            token = await identity.revoke_token(ctx.app, ctx.actor, _id(id, "API token", "id"))
        except DomainError as exc:
            return user_error(exc)
        return RevokeApiTokenSuccess(token=ApiTokenType.build(token))

    @strawberry.mutation(
        description="File a ticket for a customer: the plan must offer its type and severity, the request must be "
        "in scope, and diagnostic types need the affected account, the steps followed and the expected result."
    )
    async def file_ticket(self, info: Info[RequestContext, None], input: FileTicketInput) -> FileTicketResult:
        ctx = info.context
        try:
            ticket = await tickets.open_ticket(
                ctx.app,
                ctx.actor,
                tickets.NewTicket(
                    customer_id=_id(input.customer_id, "customer", "customerId"),
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
        except DomainError as exc:
            return user_error(exc)
        return FileTicketSuccess(
            ticket=await _ticket(ctx, ctx.actor, ticket.id), ticket_id=strawberry.ID(str(ticket.id))
        )

    @strawberry.mutation(
        description="Move a ticket to another status. Staff make every move; the customer and its partners may "
        "close a resolved ticket or reopen it."
    )
    async def transition_ticket(
        self, info: Info[RequestContext, None], input: TransitionTicketInput
    ) -> TransitionTicketResult:
        ctx = info.context
        try:
            ticket = await tickets.transition_ticket(
                ctx.app,
                ctx.actor,
                _id(input.ticket_id, "ticket", "ticketId"),
                input.to,
                reason=input.reason,
                next_update_at=input.next_update_at,
            )
            return TransitionTicketSuccess(ticket=await _changed_ticket(ctx, ticket.id))
        except DomainError as exc:
            return user_error(exc)

    @strawberry.mutation(
        description="Add a message to a ticket. A public staff reply opens the conversation and deducts its "
        "support time, or is refused with it."
    )
    async def add_comment(self, info: Info[RequestContext, None], input: AddCommentInput) -> AddCommentResult:
        ctx = info.context
        try:
            comment = await tickets.add_comment(
                ctx.app,
                ctx.actor,
                _id(input.ticket_id, "ticket", "ticketId"),
                input.body,
                internal=input.internal,
                next_update_at=input.next_update_at,
            )
            return AddCommentSuccess(
                ticket=await _changed_ticket(ctx, comment.ticket_id), comment_id=strawberry.ID(str(comment.id))
            )
        except DomainError as exc:
            return user_error(exc)

    @strawberry.mutation(
        description="Log minutes worked on a ticket (staff), or correct an earlier entry with a negative one; "
        "the ticket's support-time deductions follow in the same transaction."
    )
    async def log_time(self, info: Info[RequestContext, None], input: LogTimeInput) -> LogTimeResult:
        ctx = info.context
        try:
            entry, posted = await deductions.log_time(
                ctx.app,
                ctx.actor,
                _id(input.ticket_id, "ticket", "ticketId"),
                input.minutes,
                note=input.note,
                work_date=input.work_date,
                corrects_entry_id=_optional_id(input.corrects_entry_id, "time entry", "correctsEntryId"),
            )
            return LogTimeSuccess(
                ticket=await _changed_ticket(ctx, entry.ticket_id),
                time_entry_id=strawberry.ID(str(entry.id)),
                deductions=[LedgerEntryType.build(e) for e in posted],
            )
        except DomainError as exc:
            return user_error(exc)

    @strawberry.mutation(
        description="Request a catalog activity for a contract on a day: its size is consumed from the period "
        "containing that day, or the request is refused with nothing written."
    )
    async def book_activity(self, info: Info[RequestContext, None], input: BookActivityInput) -> BookActivityResult:
        ctx = info.context
        try:
            outcome = await bookings.book_activity(
                ctx.app,
                ctx.actor,
                bookings.NewBooking(
                    contract_id=_id(input.contract_id, "contract", "contractId"),
                    activity=input.activity,
                    on=input.on,
                    note=input.note,
                    partner_ids=_ids(input.partner_ids, "partner", "partnerIds") or [],
                    idempotency_key=input.idempotency_key,
                ),
            )
        except DomainError as exc:
            return user_error(exc)
        return _booking_success(outcome)

    @strawberry.mutation(description="Schedule a booked activity inside the period it is charged to, or move it.")
    async def schedule_booking(
        self, info: Info[RequestContext, None], input: ScheduleBookingInput
    ) -> ScheduleBookingResult:
        ctx = info.context
        try:
            booking = await bookings.schedule_booking(
                ctx.app,
                ctx.actor,
                bookings.Schedule(
                    booking_id=_id(input.booking_id, "booking", "bookingId"),
                    starts_at=input.starts_at,
                    duration_minutes=input.duration_minutes,
                    staff_email=input.staff_email,
                    partner_ids=_ids(input.partner_ids, "partner", "partnerIds"),
                ),
            )
        except DomainError as exc:
            return user_error(exc)
        return ScheduleBookingSuccess(booking=BookingType.build(booking))

    @strawberry.mutation(description="Record that a scheduled activity took place.")
    async def deliver_booking(
        self, info: Info[RequestContext, None], input: DeliverBookingInput
    ) -> DeliverBookingResult:
        ctx = info.context
        try:
            booking = await bookings.deliver_booking(
                ctx.app, ctx.actor, _id(input.booking_id, "booking", "bookingId"), input.note
            )
        except DomainError as exc:
            return user_error(exc)
        return DeliverBookingSuccess(booking=BookingType.build(booking))

    @strawberry.mutation(
        description="Cancel a requested or scheduled activity and give its units back to the period it was charged to."
    )
    async def cancel_booking(self, info: Info[RequestContext, None], input: CancelBookingInput) -> CancelBookingResult:
        ctx = info.context
        try:
            outcome = await bookings.cancel_booking(
                ctx.app, ctx.actor, _id(input.booking_id, "booking", "bookingId"), input.reason
            )
        except DomainError as exc:
            return user_error(exc)
        return _booking_success(outcome)

    @strawberry.mutation(
        description="Create a secret iCalendar address for a contract's scheduled activities and period ends."
    )
    async def create_calendar_feed(
        self, info: Info[RequestContext, None], input: CreateCalendarFeedInput
    ) -> CreateCalendarFeedResult:
        ctx = info.context
        try:
            feed, secret = await calendar_feeds.create_feed(
                ctx.app, ctx.actor, _id(input.contract_id, "contract", "contractId"), input.name
            )
        except DomainError as exc:
            return user_error(exc)
        return CreateCalendarFeedSuccess(feed=CalendarFeedType.build(feed), url=calendar_feeds.feed_url(ctx.app, secret))

    @strawberry.mutation(description="Revoke a calendar feed: its address stops working at once.")
    async def revoke_calendar_feed(
        self, info: Info[RequestContext, None], id: strawberry.ID
    ) -> RevokeCalendarFeedResult:
        ctx = info.context
        try:
            feed = await calendar_feeds.revoke_feed(ctx.app, ctx.actor, _id(id, "calendar feed", "id"))
        except DomainError as exc:
            return user_error(exc)
        return RevokeCalendarFeedSuccess(feed=CalendarFeedType.build(feed))

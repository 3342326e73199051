"""GraphQL of contracts: contracts, their entitlement periods and the ledger."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated

import strawberry
import strawberry.scalars
from strawberry.types import Info

from api.domain.catalog import contract_catalog
from api.graphql.context import RequestContext
from api.graphql.errors import (
    ConflictError,
    ContractInactiveError,
    InsufficientBalanceError,
    NotFoundError,
    PeriodEndedError,
    PermissionDeniedError,
    ValidationError,
    mutation,
    result_union,
)
from api.graphql.ids import parse_id, require_id
from api.graphql.paging import PageInfo
from api.graphql.parties import CustomerType, StaffMemberType
from api.graphql.programs import ActivityType, EntitlementUnit, LedgerUnit, PlanType
from api.graphql.rows import from_row
from api.models import Contract, LedgerEntry
from api.models.ledger import LedgerKind
from api.services import bookings, contracts, ledger
from api.services.contracts import EntitlementPeriod
from api.services.errors import ValidationFailed
from api.services.paging import Page, check_first

if TYPE_CHECKING:
    from api.graphql.availability import OnCallReservationType
    from api.graphql.bookings import BookingConnection, BookingStatusEnum, CalendarFeedType

__all__ = [
    "AdjustEntitlementInput",
    "AdjustEntitlementResult",
    "ConsumeEntitlementInput",
    "ConsumeEntitlementResult",
    "ContractConnection",
    "ContractEdge",
    "ContractMutation",
    "ContractQuery",
    "ContractType",
    "CreateContractInput",
    "CreateContractResult",
    "CreateContractSuccess",
    "CustomAllowance",
    "CustomAllowanceInput",
    "EntitlementPeriodType",
    "LedgerEntryConnection",
    "LedgerEntryEdge",
    "LedgerEntrySuccess",
    "LedgerEntryType",
    "LedgerKindEnum",
    "ReverseEntryInput",
    "ReverseEntryResult",
]


LedgerKindEnum = strawberry.enum(LedgerKind, name="LedgerKind")


@strawberry.type(
    name="EntitlementPeriod",
    description="One bucket over one period. Quantities are in the bucket's ledger unit.",
)
class EntitlementPeriodType:
    bucket: str
    bucket_name: str
    unit: EntitlementUnit
    ledger_unit: LedgerUnit
    period_start: date
    period_end: date = strawberry.field(description="The last day of the period (inclusive).")
    allowance: int
    consumed: int
    remaining: int
    ended: bool
    expired: int = strawberry.field(description="Units left unused when the period ended; never carried over.")
    overage: int = strawberry.field(
        description="Work recorded past the allowance, where the plan records rather than refuses it."
    )
    expires_in_days: int = strawberry.field(
        description="Days from today to the period's last day: 0 on the last day, negative once ended."
    )
    expiring_soon: bool = strawberry.field(
        description="The period is under way, ends within `expiryWarningDays`, and units are still unused."
    )
    expiry_warning_days: int = strawberry.field(
        description="How many days before its end a period with units left counts as expiring soon."
    )

    @classmethod
    def build(cls, period: EntitlementPeriod) -> EntitlementPeriodType:
        return cls(
            bucket=period.bucket_code,
            bucket_name=period.bucket.name,
            unit=EntitlementUnit(period.bucket.unit),
            ledger_unit=LedgerUnit(period.bucket.ledger_unit),
            period_start=period.period.start,
            period_end=period.period.end,
            allowance=period.allowance,
            consumed=period.consumed,
            remaining=period.remaining,
            ended=period.ended,
            expired=period.expired,
            overage=period.overage,
            expires_in_days=period.expires_in_days,
            expiring_soon=period.expiring_soon,
            expiry_warning_days=period.warning_days,
        )


@strawberry.type(name="LedgerEntry", description="One movement of a bucket; never edited, corrected by reversal.")
class LedgerEntryType:
    id: strawberry.ID
    contract_id: strawberry.ID
    bucket: str
    period_start: date
    period_end: date
    quantity: int = strawberry.field(description="Signed, in ledger units: positive consumes, negative restores.")
    kind: LedgerKindEnum
    reason: str
    actor_kind: str
    actor_ref: str
    on_behalf_of_customer_id: strawberry.ID | None
    idempotency_key: str | None
    reverses_entry_id: strawberry.ID | None
    ticket_id: strawberry.ID | None = strawberry.field(description="The ticket a deduction was for.")
    time_entry_id: strawberry.ID | None = strawberry.field(description="The time entry behind a deduction.")
    booking_id: strawberry.ID | None = strawberry.field(
        description="The booked activity this entry consumed for, or gave back when it was cancelled."
    )
    created_at: datetime

    @classmethod
    def build(cls, entry: LedgerEntry) -> LedgerEntryType:
        return from_row(cls, entry, bucket=entry.bucket_code)


@strawberry.type
class LedgerEntryEdge:
    cursor: str
    node: LedgerEntryType


@strawberry.type
class LedgerEntryConnection:
    edges: list[LedgerEntryEdge]
    page_info: PageInfo


@strawberry.type
class CustomAllowance:
    bucket: str
    allowance: int


@strawberry.type(name="Contract", description="One customer on one plan from an effective date to an end date.")
class ContractType:
    id: strawberry.ID
    reference: str
    effective_date: date
    end_date: date = strawberry.field(description="The last day of the term (inclusive).")
    monthly_fee: Decimal
    currency: str
    custom_allowances: list[CustomAllowance]
    order_catalog: list[str] | None = strawberry.field(
        description="The activity codes listed on the order; null when the plan's whole catalog is offered."
    )
    _customer_id: strawberry.Private[object]
    _plan_id: strawberry.Private[object]
    _client_manager_id: strawberry.Private[object]

    @classmethod
    def build(cls, contract: Contract) -> ContractType:
        return cls(
            id=strawberry.ID(str(contract.id)),
            reference=contract.reference,
            effective_date=contract.effective_date,
            end_date=contract.end_date,
            monthly_fee=contract.monthly_fee,
            currency=contract.currency,
            custom_allowances=[CustomAllowance(bucket=b, allowance=a) for b, a in contract.custom_allowances.items()],
            order_catalog=None if contract.catalog is None else list(contract.catalog),
            _customer_id=contract.customer_id,
            _plan_id=contract.plan_id,
            _client_manager_id=contract.client_manager_id,
        )

    @strawberry.field
    async def customer(self, info: Info[RequestContext, None]) -> CustomerType | None:
        customer = await info.context.loaders.customer.load(self._customer_id)
        return None if customer is None else CustomerType.build(customer)

    @strawberry.field(description="The provider's client manager assigned to this contract.")
    async def client_manager(self, info: Info[RequestContext, None]) -> StaffMemberType | None:
        if self._client_manager_id is None:
            return None
        user = await info.context.loaders.staff.load(self._client_manager_id)
        return None if user is None else StaffMemberType(name=user.name, email=user.email)

    @strawberry.field
    async def plan(self, info: Info[RequestContext, None]) -> PlanType:
        view = await info.context.loaders.plan.load(self._plan_id)
        return PlanType.build(view)

    @strawberry.field(description="Whether the contract is in force on the day (today when omitted).")
    async def is_active(self, info: Info[RequestContext, None], on: date | None = None) -> bool:
        if on is None:
            view = await info.context.loaders.plan.load(self._plan_id)
            on = info.context.app.today(view.program.timezone)
        return self.effective_date <= on <= self.end_date

    @strawberry.field(description="Each bucket's period containing the day (today when omitted), with its balance.")
    async def entitlements(
        self, info: Info[RequestContext, None], on: date | None = None
    ) -> list[EntitlementPeriodType]:
        periods = await info.context.loaders.entitlements.load((parse_id(self.id), on))
        return [EntitlementPeriodType.build(p) for p in periods]

    @strawberry.field(description="Every period of the term for one bucket: consumed, remaining and expired.")
    async def periods(self, info: Info[RequestContext, None], bucket: str) -> list[EntitlementPeriodType]:
        ctx = info.context
        periods = await contracts.bucket_periods(ctx.app, ctx.actor, parse_id(self.id), bucket)
        return [EntitlementPeriodType.build(p) for p in periods]

    @strawberry.field(description="The activities the contract may book, with the bucket and units each uses.")
    async def activity_catalog(self, info: Info[RequestContext, None]) -> list[ActivityType]:
        view = await info.context.loaders.plan.load(self._plan_id)
        offers = contract_catalog(view.program, view.rules, self.order_catalog)
        return [ActivityType.build(code, offer.activity, offer) for code, offer in offers.items()]

    @strawberry.field(description="The contract's bookings, newest first.")
    async def bookings(
        self,
        info: Info[RequestContext, None],
        status: Annotated["BookingStatusEnum", strawberry.lazy("api.graphql.bookings")] | None = None,
        first: int = 50,
        after: str | None = None,
    ) -> Annotated["BookingConnection", strawberry.lazy("api.graphql.bookings")]:
        from api.graphql.bookings import BookingConnection  # bookings refer to contracts: imported when used

        ctx = info.context
        page = await bookings.list_bookings(
            ctx.app, ctx.actor, contract_id=parse_id(self.id), status=status, first=first, after=after
        )
        return BookingConnection.build(page)

    @strawberry.field(description="The contract's calendar feeds, newest first, without their secret addresses.")
    async def calendar_feeds(
        self, info: Info[RequestContext, None]
    ) -> list[Annotated["CalendarFeedType", strawberry.lazy("api.graphql.bookings")]]:
        from api.graphql.bookings import CalendarFeedType

        feeds = await info.context.loaders.calendar_feeds.load(parse_id(self.id))
        return [CalendarFeedType.build(feed) for feed in feeds]

    @strawberry.field(description="On-call days reserved on the contract, by day (with a month, YYYY-MM, that month's).")
    async def on_call_reservations(
        self, info: Info[RequestContext, None], month: str | None = None
    ) -> list[Annotated["OnCallReservationType", strawberry.lazy("api.graphql.availability")]]:
        from api.graphql.availability import on_call_reservations

        return await on_call_reservations(info.context, parse_id(self.id), month)

    @strawberry.field(description="The contract's ledger, newest first.")
    async def ledger(
        self, info: Info[RequestContext, None], first: int = 50, after: str | None = None
    ) -> LedgerEntryConnection:
        ctx = info.context
        page = await ledger.ledger_page(ctx.app, ctx.actor, parse_id(self.id), first=first, after=after)
        return LedgerEntryConnection(
            edges=[LedgerEntryEdge(cursor=ledger.entry_cursor(e), node=LedgerEntryType.build(e)) for e in page.entries],
            page_info=PageInfo.of(page),
        )


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


@strawberry.type
class CreateContractSuccess:
    contract: ContractType


@strawberry.type(description="A ledger movement and the balance of its period afterwards.")
class LedgerEntrySuccess:
    entry: LedgerEntryType
    period: EntitlementPeriodType
    replayed: bool = strawberry.field(description="True when an idempotency key returned an earlier result.")


CreateContractResult = result_union(
    "CreateContractResult", CreateContractSuccess, ValidationError, NotFoundError, ConflictError, PermissionDeniedError
)


ConsumeEntitlementResult = result_union(
    "ConsumeEntitlementResult",
    LedgerEntrySuccess,
    ValidationError,
    NotFoundError,
    ConflictError,
    InsufficientBalanceError,
    PeriodEndedError,
    ContractInactiveError,
    PermissionDeniedError,
)


ReverseEntryResult = result_union(
    "ReverseEntryResult", LedgerEntrySuccess, ValidationError, NotFoundError, ConflictError, PermissionDeniedError
)


AdjustEntitlementResult = result_union(
    "AdjustEntitlementResult",
    LedgerEntrySuccess,
    ValidationError,
    NotFoundError,
    ConflictError,
    InsufficientBalanceError,
    ContractInactiveError,
    PermissionDeniedError,
)


def _ledger_success(outcome: ledger.LedgerOutcome) -> LedgerEntrySuccess:
    return LedgerEntrySuccess(
        entry=LedgerEntryType.build(outcome.entry),
        period=EntitlementPeriodType.build(outcome.period),
        replayed=outcome.replayed,
    )


@strawberry.type
class ContractEdge:
    cursor: str
    node: ContractType


@strawberry.type
class ContractConnection:
    edges: list[ContractEdge]
    page_info: PageInfo

    @classmethod
    def build(cls, page: Page[Contract]) -> ContractConnection:
        return cls(
            edges=[ContractEdge(cursor=contracts.contract_cursor(c), node=ContractType.build(c)) for c in page.items],
            page_info=PageInfo.of(page),
        )


@strawberry.type
class ContractQuery:
    @strawberry.field(
        description="The contracts the caller may see, by reference, a page at a time; optionally one customer's, "
        "or those whose reference starts with `reference`."
    )
    async def contracts(
        self,
        info: Info[RequestContext, None],
        customer_id: strawberry.ID | None = None,
        reference: str | None = None,
        first: int = 50,
        after: str | None = None,
    ) -> ContractConnection:
        ctx = info.context
        customer = None
        if customer_id is not None:
            customer = parse_id(customer_id)
            if customer is None:  # no such customer: an empty page, as for one the caller does not see
                check_first(first)
                return ContractConnection(edges=[], page_info=PageInfo(has_next_page=False, end_cursor=None))
        page = await contracts.page_contracts(
            ctx.app, ctx.actor, customer_id=customer, reference=reference, first=first, after=after
        )
        return ContractConnection.build(page)

    @strawberry.field
    async def contract(self, info: Info[RequestContext, None], id: strawberry.ID) -> ContractType | None:
        ctx = info.context
        ident = parse_id(id)
        if ident is None:
            return None
        found = await contracts.get_contracts_by_ids(ctx.app, ctx.actor, [ident])
        return ContractType.build(found[ident]) if ident in found else None


@strawberry.type
class ContractMutation:
    @mutation
    async def create_contract(
        self, info: Info[RequestContext, None], input: CreateContractInput
    ) -> CreateContractResult:
        ctx = info.context
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
                customer_id=require_id(input.customer_id, "customer", "customerId"),
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
        return CreateContractSuccess(contract=ContractType.build(contract))

    @mutation(description="Consume from a bucket in the period containing `on`; refused past the allowance.")
    async def consume_entitlement(
        self, info: Info[RequestContext, None], input: ConsumeEntitlementInput
    ) -> ConsumeEntitlementResult:
        ctx = info.context
        on_behalf = input.on_behalf_of_customer_id
        outcome = await ledger.consume_entitlement(
            ctx.app,
            ctx.actor,
            ledger.Consumption(
                contract_id=require_id(input.contract_id, "contract", "contractId"),
                bucket=input.bucket,
                quantity=input.quantity,
                on=input.on,
                reason=input.reason,
                idempotency_key=input.idempotency_key,
                on_behalf_of_customer_id=None
                if on_behalf is None
                else require_id(on_behalf, "customer", "onBehalfOfCustomerId"),
            ),
        )
        return _ledger_success(outcome)

    @mutation(description="Restore what an entry consumed to the period it was taken from.")
    async def reverse_entry(self, info: Info[RequestContext, None], input: ReverseEntryInput) -> ReverseEntryResult:
        ctx = info.context
        outcome = await ledger.reverse_entry(
            ctx.app,
            ctx.actor,
            require_id(input.entry_id, "ledger entry", "entryId"),
            reason=input.reason,
            idempotency_key=input.idempotency_key,
        )
        return _ledger_success(outcome)

    @mutation(description="A staff correction of a period's consumption, within [0, allowance].")
    async def adjust_entitlement(
        self, info: Info[RequestContext, None], input: AdjustEntitlementInput
    ) -> AdjustEntitlementResult:
        ctx = info.context
        outcome = await ledger.adjust_entitlement(
            ctx.app,
            ctx.actor,
            ledger.Adjustment(
                contract_id=require_id(input.contract_id, "contract", "contractId"),
                bucket=input.bucket,
                quantity=input.quantity,
                on=input.on,
                reason=input.reason,
                idempotency_key=input.idempotency_key,
            ),
        )
        return _ledger_success(outcome)

"""GraphQL object types. Related objects resolve through the request's dataloaders."""

from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal

import strawberry
import strawberry.scalars
from strawberry.types import Info

from api.graphql.context import RequestContext, parse_id
from api.graphql.errors import ErrorCodeEnum
from api.models import (
    ApiToken,
    AuditEntry,
    Booking,
    BookingStatus,
    CalendarFeed,
    Contract,
    Customer,
    LedgerEntry,
    Partner,
    ProgramRecord,
    TicketComment,
    TimeEntry,
    User,
)
from api.models.ledger import LedgerKind
from api.domain.catalog import Offer, contract_catalog
from api.programs.schema import Activity, Bucket
from api.services import access, bookings, contracts, ledger
from api.domain.sla import TargetClock
from api.services.contracts import EntitlementPeriod
from api.services.tickets import TicketView
from api.services.programs import PlanView, program_model

__all__ = [
    "ActivityType",
    "BookingConnection",
    "BookingEdge",
    "BookingStatusEnum",
    "BookingType",
    "BucketType",
    "CalendarFeedType",
    "ContractType",
    "CustomerType",
    "EntitlementPeriodType",
    "LedgerEntryConnection",
    "LedgerEntryType",
    "PartnerType",
    "PlanType",
    "ProgramType",
    "ApiTokenType",
    "AuditEntryConnection",
    "AuditEntryEdge",
    "AuditEntryType",
    "CorrespondentType",
    "FilingCheckType",
    "ScopeItemType",
    "StaffMemberType",
    "UserType",
    "ViewerType",
    "OpenWindowType",
    "SlaClockType",
    "TicketCommentType",
    "TicketConnection",
    "TicketEdge",
    "TicketEventType",
    "TicketType",
    "opt_id",
]

LedgerKindEnum = strawberry.enum(LedgerKind, name="LedgerKind")
BookingStatusEnum = strawberry.enum(
    BookingStatus, name="BookingStatus", description="requested → scheduled → delivered, or cancelled."
)


@strawberry.enum(description="What a bucket counts.")
class EntitlementUnit(enum.Enum):
    ACTIVITIES = "activities"
    HOURS = "hours"


@strawberry.enum(description="The unit of every quantity of a bucket in this API: activities, or minutes for hours.")
class LedgerUnit(enum.Enum):
    ACTIVITIES = "activities"
    MINUTES = "minutes"


@strawberry.enum
class PeriodLength(enum.Enum):
    QUARTER = "quarter"
    YEAR = "year"


@strawberry.enum(description="Where periods are counted from.")
class PeriodAnchor(enum.Enum):
    CONTRACT = "contract"
    CALENDAR = "calendar"


@strawberry.type(name="Bucket", description="An entitlement bucket of a plan.")
class BucketType:
    code: str
    name: str
    description: str
    unit: EntitlementUnit
    ledger_unit: LedgerUnit
    allowance: int | None = strawberry.field(
        description="Per period, in ledger units; null when each contract sets its own."
    )
    period: PeriodLength
    anchor: PeriodAnchor
    rollover: str
    increment: int = strawberry.field(description="The smallest amount consumed, in ledger units.")
    fair_use: bool
    best_effort: bool

    @classmethod
    def build(cls, code: str, bucket: Bucket) -> BucketType:
        return cls(
            code=code,
            name=bucket.name,
            description=bucket.description,
            unit=EntitlementUnit(bucket.unit),
            ledger_unit=LedgerUnit(bucket.ledger_unit),
            allowance=None if bucket.allowance == "contract" else int(bucket.to_ledger_units(bucket.allowance)),
            period=PeriodLength(bucket.period),
            anchor=PeriodAnchor(bucket.anchor),
            rollover=bucket.rollover,
            increment=bucket.increment,
            fair_use=bucket.fair_use,
            best_effort=bucket.best_effort,
        )


@strawberry.type(name="Plan", description="A tier or package of a program.")
class PlanType:
    id: strawberry.ID
    code: str
    name: str
    description: str
    program_code: str
    sla: bool
    buckets: list[BucketType]

    @classmethod
    def build(cls, view: PlanView) -> PlanType:
        rules = view.rules
        return cls(
            id=strawberry.ID(str(view.record.id)),
            code=view.record.code,
            name=rules.name,
            description=rules.description,
            program_code=view.program.code,
            sla=rules.sla,
            buckets=[BucketType.build(code, bucket) for code, bucket in rules.buckets.items()],
        )


@strawberry.type(name="Program", description="A provider's support program, loaded from a program file.")
class ProgramType:
    code: str
    name: str
    provider: str
    version: str
    description: str
    timezone: str
    currency: str
    source_file: str
    loaded_at: datetime
    plans: list[PlanType]

    @classmethod
    def build(cls, record: ProgramRecord, plans: list[PlanView]) -> ProgramType:
        program = program_model(record)
        return cls(
            code=record.code,
            name=record.name,
            provider=record.provider,
            version=record.version,
            description=program.description,
            timezone=program.timezone,
            currency=program.currency,
            source_file=record.source_file,
            loaded_at=record.loaded_at,
            plans=[PlanType.build(view) for view in plans],
        )


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
        return cls(
            id=strawberry.ID(str(customer.id)),
            code=customer.code,
            name=customer.name,
            email=customer.email,
            country=customer.country,
        )


@strawberry.type(name="Partner")
class PartnerType:
    id: strawberry.ID
    code: str
    name: str
    email: str | None
    certified_until_date: date | None

    @classmethod
    def build(cls, partner: Partner) -> PartnerType:
        return cls(
            id=strawberry.ID(str(partner.id)),
            code=partner.code,
            name=partner.name,
            email=partner.email,
            certified_until_date=partner.certified_until_date,
        )


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
        return cls(
            id=strawberry.ID(str(entry.id)),
            contract_id=strawberry.ID(str(entry.contract_id)),
            bucket=entry.bucket_code,
            period_start=entry.period_start,
            period_end=entry.period_end,
            quantity=entry.quantity,
            kind=entry.kind,
            reason=entry.reason,
            actor_kind=entry.actor_kind,
            actor_ref=entry.actor_ref,
            on_behalf_of_customer_id=opt_id(entry.on_behalf_of_customer_id),
            idempotency_key=entry.idempotency_key,
            reverses_entry_id=opt_id(entry.reverses_entry_id),
            ticket_id=opt_id(entry.ticket_id),
            time_entry_id=opt_id(entry.time_entry_id),
            booking_id=opt_id(entry.booking_id),
            created_at=entry.created_at,
        )


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


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


@strawberry.type(
    name="Activity",
    description="A catalog activity: advisory work sized in small activities, or an expert service in hours.",
)
class ActivityType:
    code: str
    name: str
    description: str
    category: str
    deliverables: list[str]
    unit: EntitlementUnit
    size: Decimal = strawberry.field(description="What one booking uses, in small activities or hours.")
    bucket: str | None = strawberry.field(
        description="The bucket a booking is charged to; null in a program's whole catalog, read without a plan."
    )
    ledger_unit: LedgerUnit | None
    cost: int | None = strawberry.field(
        description="What one booking consumes from the bucket, in its ledger unit (activities, or minutes)."
    )

    @classmethod
    def build(cls, code: str, activity: Activity, offer: Offer | None = None) -> ActivityType:
        return cls(
            code=code,
            name=activity.name,
            description=activity.description,
            category=activity.category,
            deliverables=list(activity.deliverables),
            unit=EntitlementUnit(activity.unit),
            size=activity.size,
            bucket=None if offer is None else offer.bucket_code,
            ledger_unit=None if offer is None else LedgerUnit(offer.bucket.ledger_unit),
            cost=None if offer is None else offer.units,
        )


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
        status: BookingStatusEnum | None = None,
        first: int = 50,
        after: str | None = None,
    ) -> BookingConnection:
        ctx = info.context
        page = await bookings.list_bookings(
            ctx.app, ctx.actor, contract_id=parse_id(self.id), status=status, first=first, after=after
        )
        return BookingConnection.build(page)

    @strawberry.field(description="The contract's calendar feeds, newest first, without their secret addresses.")
    async def calendar_feeds(self, info: Info[RequestContext, None]) -> list[CalendarFeedType]:
        feeds = await info.context.loaders.calendar_feeds.load(parse_id(self.id))
        return [CalendarFeedType.build(feed) for feed in feeds]

    @strawberry.field(description="The contract's ledger, newest first.")
    async def ledger(
        self, info: Info[RequestContext, None], first: int = 50, after: str | None = None
    ) -> LedgerEntryConnection:
        ctx = info.context
        page = await ledger.ledger_page(ctx.app, ctx.actor, parse_id(self.id), first=first, after=after)
        return LedgerEntryConnection(
            edges=[LedgerEntryEdge(cursor=ledger.entry_cursor(e), node=LedgerEntryType.build(e)) for e in page.entries],
            page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor),
        )


@strawberry.type(
    name="Booking",
    description="A catalog activity booked for a contract: its units are consumed from the period containing its "
    "date when requested, and given back if it is cancelled.",
)
class BookingType:
    id: strawberry.ID
    contract_id: strawberry.ID
    customer_id: strawberry.ID
    activity: str = strawberry.field(description="The activity's catalog code.")
    activity_name: str
    bucket: str
    quantity: int = strawberry.field(description="The units it uses, in the bucket's ledger unit.")
    period_start: date = strawberry.field(description="The period it is charged to, from …")
    period_end: date = strawberry.field(description="… to this day (inclusive).")
    requested_date: date
    status: BookingStatusEnum
    note: str
    starts_at: datetime | None
    ends_at: datetime | None
    requested_by: str = strawberry.field(description="The actor reference of whoever booked it.")
    requested_by_name: str
    via_partner_id: strawberry.ID | None
    delivered_at: datetime | None
    delivery_note: str | None
    cancelled_at: datetime | None
    cancel_reason: str | None
    created_at: datetime
    updated_at: datetime
    _booking: strawberry.Private[Booking]

    @classmethod
    def build(cls, booking: Booking) -> BookingType:
        return cls(
            id=strawberry.ID(str(booking.id)),
            contract_id=strawberry.ID(str(booking.contract_id)),
            customer_id=strawberry.ID(str(booking.customer_id)),
            activity=booking.activity_code,
            activity_name=booking.activity_name,
            bucket=booking.bucket_code,
            quantity=booking.units,
            period_start=booking.period_start,
            period_end=booking.period_end,
            requested_date=booking.requested_date,
            status=booking.status,
            note=booking.note,
            starts_at=booking.starts_at,
            ends_at=booking.ends_at,
            requested_by=booking.requested_by_ref,
            requested_by_name=booking.requested_by_name,
            via_partner_id=opt_id(booking.via_partner_id),
            delivered_at=booking.delivered_at,
            delivery_note=booking.delivery_note,
            cancelled_at=booking.cancelled_at,
            cancel_reason=booking.cancel_reason,
            created_at=booking.created_at,
            updated_at=booking.updated_at,
            _booking=booking,
        )

    @strawberry.field(description="The contract it is booked on; null when the caller may not read it.")
    async def contract(self, info: Info[RequestContext, None]) -> ContractType | None:
        contract = await info.context.loaders.contract.load(parse_id(self.contract_id))
        return None if contract is None else ContractType.build(contract)

    @strawberry.field(description="The unit of `quantity`: activities, or minutes for hours buckets.")
    async def ledger_unit(self, info: Info[RequestContext, None]) -> LedgerUnit:
        loaders = info.context.loaders
        contract = await loaders.contract.load(parse_id(self.contract_id))
        plan = None if contract is None else await loaders.plan.load(contract.plan_id)
        return LedgerUnit("activities" if plan is None else bookings.ledger_unit(plan, self._booking))

    @strawberry.field
    async def customer(self, info: Info[RequestContext, None]) -> CustomerType | None:
        customer = await info.context.loaders.customer.load(parse_id(self.customer_id))
        return None if customer is None else CustomerType.build(customer)

    @strawberry.field(description="The staff member who delivers it, once scheduled.")
    async def staff(self, info: Info[RequestContext, None]) -> StaffMemberType | None:
        if self._booking.staff_id is None:
            return None
        user = await info.context.loaders.staff.load(self._booking.staff_id)
        return None if user is None else StaffMemberType(name=user.name, email=user.email)

    @strawberry.field(description="The solution partners taking part, as the customer allowed.")
    async def partners(self, info: Info[RequestContext, None]) -> list[PartnerType]:
        details = await info.context.loaders.booking_details.load(parse_id(self.id))
        return [PartnerType.build(p) for p in details.partners]

    @strawberry.field(description="Its ledger entries: the consumption, and the reversal if it was cancelled.")
    async def ledger_entries(self, info: Info[RequestContext, None]) -> list[LedgerEntryType]:
        details = await info.context.loaders.booking_details.load(parse_id(self.id))
        return [LedgerEntryType.build(e) for e in details.entries]


@strawberry.type
class BookingEdge:
    cursor: str
    node: BookingType


@strawberry.type
class BookingConnection:
    edges: list[BookingEdge]
    page_info: PageInfo

    @classmethod
    def build(cls, page: bookings.BookingPage) -> BookingConnection:
        return cls(
            edges=[BookingEdge(cursor=bookings.booking_cursor(b), node=BookingType.build(b)) for b in page.bookings],
            page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor),
        )


@strawberry.type(
    name="CalendarFeed",
    description="A secret iCalendar address publishing a contract's scheduled activities and period ends.",
)
class CalendarFeedType:
    id: strawberry.ID
    contract_id: strawberry.ID
    name: str
    created_by_name: str
    created_at: datetime
    revoked_at: datetime | None
    active: bool

    @classmethod
    def build(cls, feed: CalendarFeed) -> CalendarFeedType:
        return cls(
            id=strawberry.ID(str(feed.id)),
            contract_id=strawberry.ID(str(feed.contract_id)),
            name=feed.name,
            created_by_name=feed.created_by_name,
            created_at=feed.created_at,
            revoked_at=feed.revoked_at,
            active=feed.revoked_at is None,
        )


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


@strawberry.type(name="Viewer", description="The caller, as the access policy sees it.")
class ViewerType:
    kind: str
    name: str
    roles: list[str]
    customer_id: strawberry.ID | None
    partner_id: strawberry.ID | None
    read_only: bool


@strawberry.type(name="User")
class UserType:
    id: strawberry.ID
    email: str
    name: str
    kind: str
    staff_role: str | None
    customer_id: strawberry.ID | None
    partner_id: strawberry.ID | None
    active: bool
    last_login_at: datetime | None

    @classmethod
    def build(cls, user: User) -> UserType:
        return cls(
            id=strawberry.ID(str(user.id)),
            email=user.email,
            name=user.name,
            kind=user.kind.value,
            staff_role=None if user.staff_role is None else user.staff_role.value,
            customer_id=opt_id(user.customer_id),
            partner_id=opt_id(user.partner_id),
            active=user.active,
            last_login_at=user.last_login_at,
        )


@strawberry.type(name="ApiToken", description="An integrator's token; its secret is shown only when created.")
class ApiTokenType:
    id: strawberry.ID
    name: str
    prefix: str
    scope: str
    access: str
    customer_id: strawberry.ID | None
    partner_id: strawberry.ID | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    @classmethod
    def build(cls, token: ApiToken) -> ApiTokenType:
        return cls(
            id=strawberry.ID(str(token.id)),
            name=token.name,
            prefix=token.prefix,
            scope=token.scope.value,
            access=token.access.value,
            customer_id=opt_id(token.customer_id),
            partner_id=opt_id(token.partner_id),
            created_at=token.created_at,
            expires_at=token.expires_at,
            revoked_at=token.revoked_at,
            last_used_at=token.last_used_at,
        )


@strawberry.type(name="AuditEntry", description="One change: who, for whom, what, when, through which interface.")
class AuditEntryType:
    id: strawberry.ID
    occurred_at: datetime
    actor_kind: str
    actor_ref: str
    actor_name: str
    partner_id: strawberry.ID | None
    on_behalf_of_customer_id: strawberry.ID | None
    interface: str
    action: str
    target_type: str
    target_id: str
    detail: strawberry.scalars.JSON

    @classmethod
    def build(cls, entry: AuditEntry) -> AuditEntryType:
        return cls(
            id=strawberry.ID(str(entry.id)),
            occurred_at=entry.occurred_at,
            actor_kind=entry.actor_kind,
            actor_ref=entry.actor_ref,
            actor_name=entry.actor_name,
            partner_id=opt_id(entry.partner_id),
            on_behalf_of_customer_id=opt_id(entry.on_behalf_of_customer_id),
            interface=entry.interface,
            action=entry.action,
            target_type=entry.target_type,
            target_id=entry.target_id,
            detail=entry.detail,
        )


@strawberry.type
class AuditEntryEdge:
    cursor: str
    node: AuditEntryType


@strawberry.type
class AuditEntryConnection:
    edges: list[AuditEntryEdge]
    page_info: PageInfo


def opt_id(value: object) -> strawberry.ID | None:
    return None if value is None else strawberry.ID(str(value))


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
        return cls(
            target=clock.target,
            calendar=clock.calendar,
            target_seconds=clock.target_seconds,
            as_time_permits=clock.as_time_permits,
            best_effort=clock.best_effort,
            started_at=clock.started_at,
            due_at=clock.due_at,
            met_at=clock.met_at,
            breached=clock.breached,
            paused=clock.paused,
            elapsed_seconds=clock.elapsed_seconds,
            remaining_seconds=clock.remaining_seconds,
            at_risk=clock.at_risk,
            missed_updates=getattr(clock, "missed_updates", 0),
        )


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
        return cls(
            id=strawberry.ID(str(entry.id)),
            minutes=entry.minutes,
            note=entry.note,
            work_date=entry.work_date,
            actor_name=entry.actor_name,
            corrects_entry_id=opt_id(entry.corrects_entry_id),
            created_at=entry.created_at,
        )


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
        return cls(
            body=comment.body,
            created_at=comment.created_at,
            internal=comment.internal,
            automatic=comment.automatic,
            author_kind=comment.author_kind,
            author_name=comment.author_name,
        )


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
        ticket = view.ticket
        return cls(
            id=strawberry.ID(str(ticket.id)),
            customer_id=strawberry.ID(str(ticket.customer_id)),
            contract_id=strawberry.ID(str(ticket.contract_id)),
            ticket_type=ticket.ticket_type,
            severity=ticket.severity,
            status=ticket.status,
            subject=ticket.subject,
            filed_by_kind=ticket.filed_by_kind,
            via_partner_id=opt_id(ticket.via_partner_id),
            created_at=ticket.created_at,
            filed_by=ticket.filed_by_ref,
            events=[
                TicketEventType(
                    kind=e.kind, at=e.at, actor_kind=e.actor_kind, severity=e.severity, automatic=e.automatic,
                    next_update_at=e.next_update_at,
                )
                for e in view.events
            ],
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

    @strawberry.field(description="The latest comment the caller may read (never an internal one for customers and partners).")
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


@strawberry.type(name="OpenWindow", description="An interval during which a support calendar's clock runs.")
class OpenWindowType:
    start: datetime
    end: datetime

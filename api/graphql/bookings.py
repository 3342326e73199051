"""GraphQL of bookings: catalog activities booked within a period's quota, and calendar feeds."""

from __future__ import annotations

from datetime import date, datetime

import strawberry
import strawberry.scalars
from strawberry.types import Info

from api.graphql.context import RequestContext
from api.graphql.contracts import ContractType, EntitlementPeriodType, LedgerEntryType
from api.graphql.errors import (
    ActivityNotInCatalogError,
    BookingDateError,
    ConflictError,
    InsufficientBalanceError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
    mutation,
    result_union,
)
from api.graphql.ids import parse_id, require_id, require_ids
from api.graphql.paging import PageInfo
from api.graphql.parties import CustomerType, PartnerType, StaffMemberType
from api.graphql.programs import LedgerUnit
from api.graphql.rows import from_row
from api.models import Booking, BookingStatus, CalendarFeed
from api.services import bookings, calendar_feeds

__all__ = [
    "BookActivityInput",
    "BookActivityResult",
    "BookingConnection",
    "BookingEdge",
    "BookingFilter",
    "BookingMutation",
    "BookingQuery",
    "BookingStatusEnum",
    "BookingSuccess",
    "BookingType",
    "CalendarFeedType",
    "CancelBookingInput",
    "CancelBookingResult",
    "CreateCalendarFeedInput",
    "CreateCalendarFeedResult",
    "CreateCalendarFeedSuccess",
    "DeliverBookingInput",
    "DeliverBookingResult",
    "DeliverBookingSuccess",
    "RevokeCalendarFeedResult",
    "RevokeCalendarFeedSuccess",
    "ScheduleBookingInput",
    "ScheduleBookingResult",
    "ScheduleBookingSuccess",
]


BookingStatusEnum = strawberry.enum(
    BookingStatus, name="BookingStatus", description="requested → scheduled → delivered, or cancelled."
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
        return from_row(
            cls,
            booking,
            activity=booking.activity_code,
            bucket=booking.bucket_code,
            quantity=booking.units,
            requested_by=booking.requested_by_ref,
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
            page_info=PageInfo.of(page),
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
        return from_row(cls, feed, active=feed.revoked_at is None)


@strawberry.input(description="Narrows `bookings`; every given condition must hold.")
class BookingFilter:
    contract_id: strawberry.ID | None = None
    customer_id: strawberry.ID | None = None
    status: BookingStatusEnum | None = None


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


BookActivityResult = result_union(
    "BookActivityResult",
    BookingSuccess,
    ValidationError,
    NotFoundError,
    ConflictError,
    ActivityNotInCatalogError,
    BookingDateError,
    InsufficientBalanceError,
    PermissionDeniedError,
)


ScheduleBookingResult = result_union(
    "ScheduleBookingResult",
    ScheduleBookingSuccess,
    ValidationError,
    NotFoundError,
    ConflictError,
    BookingDateError,
    PermissionDeniedError,
)


DeliverBookingResult = result_union(
    "DeliverBookingResult", DeliverBookingSuccess, ValidationError, NotFoundError, ConflictError, PermissionDeniedError
)


CancelBookingResult = result_union(
    "CancelBookingResult", BookingSuccess, ValidationError, NotFoundError, ConflictError, PermissionDeniedError
)


CreateCalendarFeedResult = result_union(
    "CreateCalendarFeedResult", CreateCalendarFeedSuccess, ValidationError, NotFoundError, PermissionDeniedError
)


RevokeCalendarFeedResult = result_union(
    "RevokeCalendarFeedResult", RevokeCalendarFeedSuccess, NotFoundError, PermissionDeniedError
)


def _booking_success(outcome: bookings.BookingOutcome) -> BookingSuccess:
    return BookingSuccess(
        booking=BookingType.build(outcome.booking),
        period=EntitlementPeriodType.build(outcome.period),
        replayed=outcome.replayed,
    )


@strawberry.type
class BookingQuery:
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
        ids = {
            name: parse_id(value)
            for name, value in (("contract", given.contract_id), ("customer", given.customer_id))
            if value is not None
        }
        if None in ids.values():
            # Not an id this API gave out: answered as an object without bookings.
            return BookingConnection(edges=[], page_info=PageInfo(has_next_page=False, end_cursor=None))
        page = await bookings.list_bookings(
            ctx.app,
            ctx.actor,
            contract_id=ids.get("contract"),
            customer_id=ids.get("customer"),
            status=given.status,
            first=first,
            after=after,
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


@strawberry.type
class BookingMutation:
    @mutation(
        description="Request a catalog activity for a contract on a day: its size is consumed from the period "
        "containing that day, or the request is refused with nothing written."
    )
    async def book_activity(self, info: Info[RequestContext, None], input: BookActivityInput) -> BookActivityResult:
        ctx = info.context
        outcome = await bookings.book_activity(
            ctx.app,
            ctx.actor,
            bookings.NewBooking(
                contract_id=require_id(input.contract_id, "contract", "contractId"),
                activity=input.activity,
                on=input.on,
                note=input.note,
                partner_ids=require_ids(input.partner_ids, "partner", "partnerIds") or [],
                idempotency_key=input.idempotency_key,
            ),
        )
        return _booking_success(outcome)

    @mutation(description="Schedule a booked activity inside the period it is charged to, or move it.")
    async def schedule_booking(
        self, info: Info[RequestContext, None], input: ScheduleBookingInput
    ) -> ScheduleBookingResult:
        ctx = info.context
        booking = await bookings.schedule_booking(
            ctx.app,
            ctx.actor,
            bookings.Schedule(
                booking_id=require_id(input.booking_id, "booking", "bookingId"),
                starts_at=input.starts_at,
                duration_minutes=input.duration_minutes,
                staff_email=input.staff_email,
                partner_ids=require_ids(input.partner_ids, "partner", "partnerIds"),
            ),
        )
        return ScheduleBookingSuccess(booking=BookingType.build(booking))

    @mutation(description="Record that a scheduled activity took place.")
    async def deliver_booking(
        self, info: Info[RequestContext, None], input: DeliverBookingInput
    ) -> DeliverBookingResult:
        ctx = info.context
        booking = await bookings.deliver_booking(
            ctx.app, ctx.actor, require_id(input.booking_id, "booking", "bookingId"), input.note
        )
        return DeliverBookingSuccess(booking=BookingType.build(booking))

    @mutation(
        description="Cancel a requested or scheduled activity and give its units back to the period it was charged to."
    )
    async def cancel_booking(self, info: Info[RequestContext, None], input: CancelBookingInput) -> CancelBookingResult:
        ctx = info.context
        outcome = await bookings.cancel_booking(
            ctx.app, ctx.actor, require_id(input.booking_id, "booking", "bookingId"), input.reason
        )
        return _booking_success(outcome)

    @mutation(description="Create a secret iCalendar address for a contract's scheduled activities and period ends.")
    async def create_calendar_feed(
        self, info: Info[RequestContext, None], input: CreateCalendarFeedInput
    ) -> CreateCalendarFeedResult:
        ctx = info.context
        feed, secret = await calendar_feeds.create_feed(
            ctx.app, ctx.actor, require_id(input.contract_id, "contract", "contractId"), input.name
        )
        return CreateCalendarFeedSuccess(
            feed=CalendarFeedType.build(feed), url=calendar_feeds.feed_url(ctx.app, secret, ctx.base_url)
        )

    @mutation(description="Revoke a calendar feed: its address stops working at once.")
    async def revoke_calendar_feed(
        self, info: Info[RequestContext, None], id: strawberry.ID
    ) -> RevokeCalendarFeedResult:
        ctx = info.context
        feed = await calendar_feeds.revoke_feed(ctx.app, ctx.actor, require_id(id, "calendar feed", "id"))
        return RevokeCalendarFeedSuccess(feed=CalendarFeedType.build(feed))

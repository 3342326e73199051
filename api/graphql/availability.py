"""GraphQL of service levels: outages, monthly availability and service credits, on-call reservations."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal

import strawberry
from strawberry.types import Info

from api.domain.availability import ServiceCredit, round_money
from api.domain.reports import parse_month
from api.graphql.context import RequestContext
from api.graphql.errors import (
    AddOnNotOfferedError,
    ConflictError,
    NotFoundError,
    OnCallDateError,
    PermissionDeniedError,
    RateOutOfRangeError,
    ValidationError,
    mutation,
    result_union,
)
from api.graphql.ids import opt_id, parse_id, require_id
from api.graphql.rows import from_row
from api.models import OnCallReservation, OnCallStatus, Outage
from api.services import availability, on_call
from api.services.errors import NotFound, ValidationFailed

__all__ = [
    "AvailabilityMutation",
    "AvailabilityQuery",
    "CancelOnCallResult",
    "OnCallReservationType",
    "OnCallStatusEnum",
    "OutageType",
    "RecordOutageInput",
    "RecordOutageResult",
    "ReserveOnCallInput",
    "ReserveOnCallResult",
    "ServiceCreditType",
    "month_argument",
]

OnCallStatusEnum = strawberry.enum(OnCallStatus, name="OnCallStatus")


def month_argument(value: str) -> date:
    """A `month` argument (YYYY-MM) as the first day of that month, or the refusal naming the field."""
    try:
        return parse_month(value)
    except ValueError as exc:
        raise ValidationFailed(str(exc), field="month") from None


@strawberry.type(name="Outage", description="Downtime recorded by staff, for one contract or all of a program's.")
class OutageType:
    id: strawberry.ID
    contract_id: strawberry.ID | None = strawberry.field(description="Null when it concerns a whole program.")
    started_at: datetime
    ended_at: datetime
    impacted_portion: Decimal = strawberry.field(description="The share of the service impacted, above 0 up to 1.")
    note: str
    created_by_name: str
    created_at: datetime

    @classmethod
    def build(cls, outage: Outage) -> OutageType:
        return from_row(cls, outage, contract_id=opt_id(outage.contract_id))


@strawberry.type(
    name="ServiceCredit",
    description="A contract's availability over one calendar month, counted in UTC minutes, and the credit the "
    "plan's tiers give: that month's fee × the impacted portion × the tier's percentage, rounded half-up to the "
    "currency's minor unit.",
)
class ServiceCreditType:
    month: date = strawberry.field(description="The first day of the month.")
    minutes: int = strawberry.field(description="The minutes measured: the month's, or those the contract ran.")
    downtime_minutes: int
    availability_percent: Decimal = strawberry.field(description="Unrounded.")
    target_percent: Decimal
    tier_below: Decimal | None = strawberry.field(description="The tier reached: availability below this …")
    tier_down_to: Decimal | None = strawberry.field(description="… and at or above this. Null: target met.")
    credit_percent: Decimal
    impacted_portion: Decimal
    fee: Decimal = strawberry.field(description="The month's fee, pro rata to the days the contract was in force.")
    amount: Decimal
    currency: str

    @classmethod
    def build(cls, credit: ServiceCredit) -> ServiceCreditType:
        return from_row(cls, credit)


@strawberry.type(
    name="OnCallReservation",
    description="On-call readiness reserved for one day: whole consultant-days at a day rate. Cancelled before "
    "the day, it is not charged.",
)
class OnCallReservationType:
    id: strawberry.ID
    contract_id: strawberry.ID
    add_on: str
    on_date: date
    consultants: int
    day_rate: Decimal
    amount: Decimal = strawberry.field(description="consultants × day rate; 0 once cancelled.")
    currency: str
    window: str | None
    status: OnCallStatusEnum
    note: str
    created_by_name: str
    via_partner_id: strawberry.ID | None
    created_at: datetime
    cancelled_at: datetime | None

    @classmethod
    def build(cls, reservation: OnCallReservation) -> OnCallReservationType:
        live = reservation.status == OnCallStatus.RESERVED
        return from_row(
            cls,
            reservation,
            add_on=reservation.add_on_code,
            amount=round_money(
                reservation.day_rate * reservation.consultants if live else Decimal(0), reservation.currency
            ),
        )


@strawberry.input(description="An outage: for one contract (`contractId`) or for every contract of a program.")
class RecordOutageInput:
    started_at: datetime = strawberry.field(description="With its time zone.")
    ended_at: datetime = strawberry.field(description="With its time zone; the outage must have ended.")
    impacted_portion: Decimal = strawberry.field(description="The share of the service impacted, above 0 up to 1.")
    note: str = ""
    contract_id: strawberry.ID | None = None
    program_code: str | None = None


@strawberry.input(description="Whole consultant-days of on-call readiness, evenings or weekends.")
class ReserveOnCallInput:
    contract_id: strawberry.ID
    dates: list[date] = strawberry.field(description="One reservation per day; all of them or none.")
    consultants: int = 1
    day_rate: Decimal = strawberry.field(description="Per consultant and day, within the plan's range.")
    window: str | None = strawberry.field(
        default=None, description="One of the add-on's windows; by default weekends on a weekend day, else evenings."
    )
    note: str = ""


@strawberry.type
class RecordOutageSuccess:
    outage: OutageType


@strawberry.type
class ReserveOnCallSuccess:
    reservations: list[OnCallReservationType]


@strawberry.type
class CancelOnCallSuccess:
    reservation: OnCallReservationType


RecordOutageResult = result_union(
    "RecordOutageResult", RecordOutageSuccess, ValidationError, NotFoundError, PermissionDeniedError
)
ReserveOnCallResult = result_union(
    "ReserveOnCallResult",
    ReserveOnCallSuccess,
    ValidationError,
    NotFoundError,
    ConflictError,
    AddOnNotOfferedError,
    RateOutOfRangeError,
    OnCallDateError,
    PermissionDeniedError,
)
CancelOnCallResult = result_union(
    "CancelOnCallResult", CancelOnCallSuccess, ValidationError, NotFoundError, ConflictError, PermissionDeniedError
)


async def _readable(call, *args):  # type: ignore[no-untyped-def]
    """A read about a contract the caller may not see is answered as one that does not exist: null."""
    try:
        return await call(*args)
    except NotFound:
        return None


@strawberry.type
class AvailabilityQuery:
    @strawberry.field(
        description="A contract's availability in a month (YYYY-MM) and its service credit; null when the plan has "
        "no availability terms or the contract is not one the caller may read."
    )
    async def service_credit(
        self, info: Info[RequestContext, None], contract_id: strawberry.ID, month: str
    ) -> ServiceCreditType | None:
        ctx, ident = info.context, parse_id(contract_id)
        first = month_argument(month)
        if ident is None:
            return None
        credit = await _readable(availability.service_credit, ctx.app, ctx.actor, ident, first)
        return None if credit is None else ServiceCreditType.build(credit)

    @strawberry.field(description="The outages that concern a contract (its own and its program's), oldest first.")
    async def outages(
        self, info: Info[RequestContext, None], contract_id: strawberry.ID, month: str | None = None
    ) -> list[OutageType] | None:
        ctx, ident = info.context, parse_id(contract_id)
        first = None if month is None else month_argument(month)
        found = None if ident is None else await _readable(availability.list_outages, ctx.app, ctx.actor, ident, first)
        return None if found is None else [OutageType.build(o) for o in found]


async def on_call_reservations(
    ctx: RequestContext, contract_id: uuid.UUID, month: str | None
) -> list[OnCallReservationType]:
    """For `Contract.onCallReservations`."""
    first = None if month is None else month_argument(month)
    found = await on_call.list_on_call(ctx.app, ctx.actor, contract_id, month=first)
    return [OnCallReservationType.build(r) for r in found]


@strawberry.type
class AvailabilityMutation:
    @mutation(description="Record an outage (staff); it counts in the availability of every month it touches.")
    async def record_outage(self, info: Info[RequestContext, None], input: RecordOutageInput) -> RecordOutageResult:
        ctx = info.context
        outage = await availability.record_outage(
            ctx.app,
            ctx.actor,
            availability.NewOutage(
                started_at=input.started_at,
                ended_at=input.ended_at,
                impacted_portion=input.impacted_portion,
                note=input.note,
                contract_id=None
                if input.contract_id is None
                else require_id(input.contract_id, "contract", "contractId"),
                program_code=input.program_code,
            ),
        )
        return RecordOutageSuccess(outage=OutageType.build(outage))

    @mutation(
        description="Reserve on-call readiness on the plan's on-call add-on: whole consultant-days, at a day rate "
        "within the plan's range, on days from today within the term."
    )
    async def reserve_on_call(self, info: Info[RequestContext, None], input: ReserveOnCallInput) -> ReserveOnCallResult:
        ctx = info.context
        reservations = await on_call.reserve_on_call(
            ctx.app,
            ctx.actor,
            on_call.NewReservation(
                contract_id=require_id(input.contract_id, "contract", "contractId"),
                dates=input.dates,
                consultants=input.consultants,
                day_rate=input.day_rate,
                window=input.window,
                note=input.note,
            ),
        )
        return ReserveOnCallSuccess(reservations=[OnCallReservationType.build(r) for r in reservations])

    @mutation(description="Cancel an on-call reservation before its day: it is not charged.")
    async def cancel_on_call(self, info: Info[RequestContext, None], id: strawberry.ID) -> CancelOnCallResult:
        ctx = info.context
        reservation = await on_call.cancel_on_call(ctx.app, ctx.actor, require_id(id, "on-call reservation", "id"))
        return CancelOnCallSuccess(reservation=OnCallReservationType.build(reservation))

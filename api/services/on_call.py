"""On-call readiness (the tiered program's Premium add-on): whole consultant-days reserved for evenings or
weekends at a day rate inside the plan's range, cancelled free of charge before the day, totalled per
month for the reports. Who may reserve follows the booking rules: the customer, a partner that manages
it where the link allows booking, the contract's client manager, admins and integrators."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.domain.availability import format_money, format_money_range, minor_unit, month_bounds, month_start, round_money
from api.domain.on_call import on_call_add_ons, window_for
from api.models import Contract, OnCallReservation, OnCallStatus, User
from api.programs.schema import AddOn
from api.services import audit, inputs, outbox, policy
from api.services.context import Actor, AppContext
from api.services.contracts import ContractView, load_contract_view
from api.services.errors import (
    AddOnNotOffered,
    Conflict,
    ErrorCode,
    NotFound,
    OnCallDateRefused,
    PermissionDenied,
    RateOutOfRange,
    ValidationFailed,
)

__all__ = [
    "MAX_CONSULTANTS",
    "MAX_DAYS",
    "NewReservation",
    "OnCallOffer",
    "OnCallTotal",
    "cancel_on_call",
    "list_on_call",
    "on_call_offer",
    "on_call_totals",
    "reserve_on_call",
]

MAX_DAYS = 62  # dates in one request
MAX_CONSULTANTS = 20
# Up to this many contracts, totals ask for their reservations by id; above it, for the month's reservations
# of every contract, so one statement never binds more parameters than a backend allows.
_IDS_IN_QUERY = 1000


@dataclass(frozen=True)
class NewReservation:
    contract_id: uuid.UUID
    dates: Sequence[date]  # one whole consultant-day each, per consultant
    consultants: int
    day_rate: Decimal  # per consultant and day, in the add-on's currency
    window: str | None = None  # one of the add-on's windows; None: weekends on a weekend day, else evenings
    note: str = ""
    add_on: str | None = None  # the add-on's code; None: the plan's on-call add-on


@dataclass(frozen=True)
class OnCallOffer:
    """What a contract's plan offers for on-call readiness, for forms and error messages."""

    code: str
    add_on: AddOn

    @property
    def price_range(self) -> str:
        return format_money_range(self.add_on.price_min, self.add_on.price_max, self.add_on.currency)


@dataclass(frozen=True)
class OnCallTotal:
    """What a contract's on-call reservations in a month come to (cancelled ones are not charged)."""

    consultant_days: int
    amount: Decimal
    currency: str


def _offer(view: ContractView, code: str | None) -> OnCallOffer:
    offered = on_call_add_ons(view.plan.rules)
    chosen = next(iter(offered), None) if code is None else (code if code in offered else None)
    if chosen is None:
        plan = view.plan.rules.name
        raise AddOnNotOffered(
            f"plan {plan!r} of contract {view.contract.reference} offers no on-call readiness"
            + (f" called {code!r}" if code is not None else "")
            + (f" (its on-call add-ons: {', '.join(offered)})" if offered else ""),
            available=list(offered),
            field="addOn" if code is not None and offered else "contractId",
        )
    return OnCallOffer(chosen, offered[chosen])


async def _require_reserver(
    session: AsyncSession, actor: Actor, customer_id: uuid.UUID, field: str = "contractId"
) -> None:
    """A partner reserves (and cancels) only for a customer it manages, and only where the link allows it
    to book. Customers and client managers reach only their own contracts through `load_contract_view`."""
    if actor.kind != "partner":
        return
    link = await session.scalar(policy.partner_link(actor, customer_id))
    if link is None or not link.can_book_activities:
        raise PermissionDenied(
            f"{actor.name} may not reserve on-call days for this customer: the customer has not allowed it",
            field=field,
        )
    if not link.managed:
        raise PermissionDenied(
            f"{actor.name} may not reserve on-call days for this customer: a partner reserves only for the "
            "customers it manages",
            field=field,
        )


def _check_rate(offer: OnCallOffer, rate: Decimal) -> Decimal:
    add_on = offer.add_on
    if not isinstance(rate, Decimal) or not rate.is_finite() or rate != rate.quantize(minor_unit(add_on.currency)):
        raise ValidationFailed(
            f"the day rate must be an amount in {add_on.currency} with at most the currency's decimals, not {rate}",
            field="dayRate",
        )
    if not add_on.price_min <= rate <= add_on.price_max:
        raise RateOutOfRange(
            f"a day rate of {add_on.currency} {rate:,} is outside the range of {add_on.name}: {offer.price_range} "
            "per consultant and day",
            minimum=add_on.price_min, maximum=add_on.price_max, currency=add_on.currency,
        )
    return rate


def _check_days(ctx: AppContext, view: ContractView, days: Sequence[date]) -> list[date]:
    if not days:
        raise ValidationFailed("name at least one day to reserve", field="dates")
    if len(days) > MAX_DAYS:
        raise ValidationFailed(f"at most {MAX_DAYS} days can be reserved at once", field="dates")
    if len(set(days)) != len(days):
        twice = sorted({d for d in days if list(days).count(d) > 1})
        raise ValidationFailed(f"{twice[0]} is named twice", field="dates")
    contract, today = view.contract, view.today(ctx)
    first, last = max(today, contract.effective_date), contract.end_date
    for day in sorted(days):
        if day < today:
            raise OnCallDateRefused(
                f"{day} is in the past: reserve for {today} or later", code=ErrorCode.DATE_IN_PAST,
                earliest=first, latest=last, field="dates",
            )
        if day < contract.effective_date:
            raise OnCallDateRefused(
                f"{day} is before contract {contract.reference} starts on {contract.effective_date}",
                code=ErrorCode.BEFORE_CONTRACT_START, earliest=first, latest=last, field="dates",
            )
        if day > contract.end_date:
            raise OnCallDateRefused(
                f"{day} is after contract {contract.reference} ends on {contract.end_date}",
                code=ErrorCode.AFTER_CONTRACT_END, earliest=first, latest=last, field="dates",
            )
    return sorted(days)


async def reserve_on_call(ctx: AppContext, actor: Actor, new: NewReservation) -> list[OnCallReservation]:
    """Reserve on-call readiness on a contract for one or several days, `consultants` whole
    consultant-days each, at a day rate inside the add-on's range: all the days, or none. Refused with a
    typed error, and nothing written, when the plan has no on-call add-on, the rate is outside its range,
    a day is in the past, outside the contract's term or already reserved. The client manager is told."""
    policy.require(actor, "on_call.reserve")
    if not isinstance(new.consultants, int) or not 1 <= new.consultants <= MAX_CONSULTANTS:
        raise ValidationFailed(f"reserve 1 to {MAX_CONSULTANTS} consultants, not {new.consultants}", field="consultants")
    note = inputs.text(ctx, (new.note or "").strip(), "note")
    inputs.optional_text(ctx, new.window, "window")
    inputs.optional_text(ctx, new.add_on, "addOn")
    for day in list(new.dates)[:MAX_DAYS]:  # more are refused below
        inputs.day(ctx, day, "dates")
    if isinstance(new.day_rate, Decimal) and new.day_rate.is_finite():
        inputs.decimal(new.day_rate, "dayRate", label="the day rate")
    try:
        async with ctx.db.write() as session:
            view = await load_contract_view(session, actor, new.contract_id)
            contract = view.contract
            await _require_reserver(session, actor, contract.customer_id)
            offer = _offer(view, new.add_on)
            rate = _check_rate(offer, new.day_rate)
            days = _check_days(ctx, view, new.dates)
            windows: list[str | None] = []
            for day in days:
                try:
                    windows.append(window_for(offer.add_on, day, new.window))
                except ValueError as refused:
                    raise ValidationFailed(str(refused), field="window") from None
            taken = sorted(
                await session.scalars(
                    select(OnCallReservation.on_date).where(
                        OnCallReservation.contract_id == contract.id,
                        OnCallReservation.on_date.in_(days),
                        OnCallReservation.status == OnCallStatus.RESERVED,
                    )
                )
            )
            if taken:
                raise _already_reserved(contract.reference, taken[0])
            now = ctx.now()
            reservations = [
                OnCallReservation(
                    contract_id=contract.id, customer_id=contract.customer_id, add_on_code=offer.code, on_date=day,
                    consultants=new.consultants, day_rate=rate, currency=offer.add_on.currency, window=window,
                    status=OnCallStatus.RESERVED, note=note, created_by_kind=actor.kind, created_by_ref=actor.ref,
                    created_by_name=actor.name[:200], via_partner_id=actor.partner_id, created_at=now,
                )
                for day, window in zip(days, windows, strict=True)
            ]
            session.add_all(reservations)
            await session.flush()
            for reservation in reservations:
                await audit.record(
                    session, ctx, actor, "on_call.reserve", target_type="on_call_reservation",
                    target_id=reservation.id, on_behalf_of_customer_id=contract.customer_id,
                    detail={
                        "contract": contract.reference, "on": reservation.on_date.isoformat(),
                        "consultants": reservation.consultants, "day_rate": str(rate),
                        "currency": reservation.currency, "window": reservation.window,
                    },
                )
            await _tell_client_manager(session, ctx, actor, view, offer, reservations, "reserved")
            return reservations
    except IntegrityError:
        # Another request reserved one of these days between our check and our insert.
        raise Conflict(
            "one of these days was reserved for the contract at the same moment by another request: reload and "
            "try again",
            field="dates",
        ) from None


def _already_reserved(reference: str, day: date) -> Conflict:
    return Conflict(
        f"on-call readiness is already reserved for contract {reference} on {day}: cancel that reservation "
        "and reserve again to change it",
        field="dates", on=day.isoformat(),
    )


def _charge(reservation: OnCallReservation) -> Decimal:
    return reservation.day_rate * reservation.consultants


def _describe(reservation: OnCallReservation) -> str:
    window = f", {reservation.window}" if reservation.window else ""
    return (
        f"{reservation.on_date:%A %Y-%m-%d}{window}: {reservation.consultants} consultant(s) at "
        f"{format_money(reservation.day_rate, reservation.currency)} = "
        f"{format_money(_charge(reservation), reservation.currency)}"
    )


async def _tell_client_manager(
    session: AsyncSession,
    ctx: AppContext,
    actor: Actor,
    view: ContractView,
    offer: OnCallOffer,
    reservations: Sequence[OnCallReservation],
    what: str,
) -> None:
    """The client manager staffs the on-call days: they hear of each reservation and cancellation."""
    manager_id = view.contract.client_manager_id
    manager = None if manager_id is None or manager_id == actor.user_id else await session.get(User, manager_id)
    if manager is None or not manager.active:
        return
    first = reservations[0]
    total = sum((_charge(r) for r in reservations), Decimal(0))
    days = len(reservations)
    response = offer.add_on.response_minutes
    await outbox.queue(
        session, ctx, kind=f"on_call_{what}", customer_id=view.contract.customer_id,
        dedupe_key=f"on_call:{first.id}:{what}", recipient=outbox.Recipient("staff", manager.name, manager.email),
        subject=(
            f"[{view.plan.program.provider}] {offer.add_on.name} {what} for {view.contract.reference}: "
            f"{days} day(s) from {first.on_date}"
        ),
        body=(
            f"{actor.name} {what} {offer.add_on.name} on contract {view.contract.reference}:\n\n"
            + "\n".join(f"- {_describe(r)}" for r in reservations)
            + (
                f"\n\nTotal: {format_money(total, first.currency)}."
                if what == "reserved"
                else "\n\nCancelled before the day: nothing is charged."
            )
            + (
                f" Every inquiry in the reserved period gets a response within {response} minutes."
                if response and what == "reserved"
                else ""
            )
            + (f"\n\nNote: {first.note}" if first.note else "")
            + f"\n\n{ctx.settings.link_base}/contracts/{view.contract.id}"
        ),
    )


async def cancel_on_call(ctx: AppContext, actor: Actor, reservation_id: uuid.UUID) -> OnCallReservation:
    """Cancel a reservation before its day (in the program's time zone): it is then not charged. On the
    day or later it stays, and is charged."""
    policy.require(actor, "on_call.cancel")
    async with ctx.db.write() as session:
        reservation = await session.scalar(
            select(OnCallReservation)
            .where(
                OnCallReservation.id == reservation_id,
                OnCallReservation.contract_id.in_(policy.visible_contract_ids(actor)),
            )
            .with_for_update()
        )
        if reservation is None:
            raise NotFound("on-call reservation", reservation_id, field="id")
        view = await load_contract_view(session, actor, reservation.contract_id)
        await _require_reserver(session, actor, reservation.customer_id, field="id")
        if reservation.status != OnCallStatus.RESERVED:
            raise Conflict(
                f"the on-call reservation for {reservation.on_date} is {reservation.status.value} already",
                code=ErrorCode.WRONG_STATUS, field="id", status=reservation.status.value,
            )
        today = view.today(ctx)
        if today >= reservation.on_date:
            raise ValidationFailed(
                f"the on-call day {reservation.on_date} has "
                + ("begun" if today == reservation.on_date else "passed")
                + ": a reservation is cancelled free of charge only before its day",
                code=ErrorCode.TOO_LATE_TO_CANCEL, field="id",
            )
        reservation.status = OnCallStatus.CANCELLED
        reservation.cancelled_at = ctx.now()
        reservation.cancelled_by_ref = actor.ref
        await session.flush()
        await audit.record(
            session, ctx, actor, "on_call.cancel", target_type="on_call_reservation", target_id=reservation.id,
            on_behalf_of_customer_id=reservation.customer_id,
            detail={"contract": view.contract.reference, "on": reservation.on_date.isoformat()},
        )
        offers = on_call_add_ons(view.plan.rules)
        if reservation.add_on_code in offers:
            offer = OnCallOffer(reservation.add_on_code, offers[reservation.add_on_code])
            await _tell_client_manager(session, ctx, actor, view, offer, [reservation], "cancelled")
        return reservation


async def list_on_call(
    ctx: AppContext,
    actor: Actor,
    contract_id: uuid.UUID,
    *,
    month: date | None = None,
    include_cancelled: bool = True,
) -> list[OnCallReservation]:
    """A contract's on-call reservations by day (with a month, that calendar month's), for whoever may read
    the contract."""
    policy.require(actor, "on_call.read")
    inputs.optional_day(ctx, month, "month")
    async with ctx.db.read() as session:
        await load_contract_view(session, actor, contract_id)
        query = (
            select(OnCallReservation)
            .where(OnCallReservation.contract_id == contract_id)
            .order_by(OnCallReservation.on_date, OnCallReservation.created_at, OnCallReservation.id)
        )
        if month is not None:
            start, end = month_bounds(month)
            query = query.where(OnCallReservation.on_date >= start.date(), OnCallReservation.on_date < end.date())
        if not include_cancelled:
            query = query.where(OnCallReservation.status == OnCallStatus.RESERVED)
        return list(await session.scalars(query))


async def on_call_offer(ctx: AppContext, actor: Actor, contract_id: uuid.UUID) -> OnCallOffer | None:
    """The on-call readiness the contract's plan offers (name, price range, windows), or None."""
    policy.require(actor, "on_call.read")
    async with ctx.db.read() as session:
        view = await load_contract_view(session, actor, contract_id)
    offered = on_call_add_ons(view.plan.rules)
    code = next(iter(offered), None)
    return None if code is None else OnCallOffer(code, offered[code])


async def on_call_totals(
    session: AsyncSession, contracts: Sequence[Contract], month: date
) -> dict[uuid.UUID, OnCallTotal]:
    """Each contract's reserved (not cancelled) consultant-days in the calendar month and what they come to,
    in one statement for any number of contracts. A contract without any gets zero in its own currency.
    No access check: the caller has chosen the contracts."""
    found = {c.id: OnCallTotal(0, round_money(Decimal(0), c.currency), c.currency) for c in contracts}
    if not contracts:
        return found
    start, end = month_bounds(month_start(month))
    query = select(
        OnCallReservation.contract_id, OnCallReservation.consultants, OnCallReservation.day_rate,
        OnCallReservation.currency,
    ).where(
        OnCallReservation.on_date >= start.date(),
        OnCallReservation.on_date < end.date(),
        OnCallReservation.status == OnCallStatus.RESERVED,
    )
    if len(found) <= _IDS_IN_QUERY:
        query = query.where(OnCallReservation.contract_id.in_(found))
    days: dict[uuid.UUID, int] = {}
    amounts: dict[uuid.UUID, Decimal] = {}
    currencies: dict[uuid.UUID, str] = {}
    for contract_id, consultants, rate, currency in await session.execute(query):
        if contract_id not in found:
            continue
        if currencies.setdefault(contract_id, currency) != currency:
            raise ValueError(f"contract {contract_id} has on-call reservations in two currencies in {start:%Y-%m}")
        days[contract_id] = days.get(contract_id, 0) + consultants
        amounts[contract_id] = amounts.get(contract_id, Decimal(0)) + Decimal(rate) * consultants
    for contract_id, count in days.items():
        currency = currencies[contract_id]
        found[contract_id] = OnCallTotal(count, round_money(amounts[contract_id], currency), currency)
    return found


"""Booking catalog activities within a contract's quota: requested → scheduled → delivered, or cancelled.

A booking is charged to the period containing the day it is requested for: its activity's size is
consumed from that period in the transaction that creates it (a repeated idempotency key returns the
first booking), and cancelling gives the units back to the same period. Scheduling fixes the start,
the length and the staff member inside that period. The customer books, a partner books only for a
customer it manages and only where the link allows it, and the contract's client manager books on the
customer's behalf; partners take part in an activity only where the customer allowed it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.domain.catalog import Offer, plan_catalog
from api.domain.periods import Period
from api.domain.units import format_quantity
from api.models import (
    Booking,
    BookingPartner,
    BookingStatus,
    LedgerEntry,
    LedgerKind,
    Partner,
    PartnerCustomer,
    User,
    UserKind,
)
from api.programs.schema import Activity
from api.services import access, audit, inputs, ledger, outbox, policy, webhooks
from api.services.context import Actor, AppContext
from api.services.contracts import ContractView, EntitlementPeriod, load_contract_view
from api.services.errors import (
    BookingDateRefused,
    Conflict,
    ErrorCode,
    InsufficientBalance,
    NotFound,
    NotInCatalog,
    PermissionDenied,
    ValidationFailed,
    check_email,
)
from api.services.paging import cut_page, encode_cursor, newest_first
from api.services.programs import PlanView, get_program, program_model

__all__ = [
    "DEFAULT_MINUTES",
    "MAX_MINUTES",
    "BookingDetails",
    "BookingOutcome",
    "BookingPage",
    "CatalogItem",
    "NewBooking",
    "Schedule",
    "activity_catalog",
    "book_activity",
    "booking_cursor",
    "booking_details",
    "cancel_booking",
    "deliver_booking",
    "get_bookings",
    "ledger_unit",
    "list_bookings",
    "participants_offered",
    "schedule_booking",
]

# How long a scheduled activity counted in small activities lasts when scheduling names no length;
# one counted in hours lasts its size.
DEFAULT_MINUTES = 60
MAX_MINUTES = 24 * 60
MAX_PARTNERS = 20
_OPEN = (BookingStatus.REQUESTED, BookingStatus.SCHEDULED)


@dataclass(frozen=True)
class NewBooking:
    contract_id: uuid.UUID
    activity: str
    on: date  # the day wanted; the booking is charged to the period containing it
    note: str = ""
    partner_ids: Sequence[uuid.UUID] = ()  # partners to take part, where the customer allows it
    idempotency_key: str | None = None


@dataclass(frozen=True)
class Schedule:
    booking_id: uuid.UUID
    starts_at: datetime
    duration_minutes: int | None = None  # None: the activity's hours, or DEFAULT_MINUTES
    staff_email: str | None = None  # None: the contract's client manager
    partner_ids: Sequence[uuid.UUID] | None = None  # None: keep those taking part


@dataclass(frozen=True)
class BookingOutcome:
    booking: Booking
    period: EntitlementPeriod  # the period charged, after the change
    replayed: bool = False  # True when an idempotency key returned an earlier booking


@dataclass(frozen=True)
class BookingDetails:
    """What a booking holds besides its row: the partners taking part and its ledger entries."""

    partners: list[Partner] = field(default_factory=list)
    entries: list[LedgerEntry] = field(default_factory=list)


@dataclass(frozen=True)
class BookingPage:
    bookings: list[Booking]
    has_next_page: bool
    end_cursor: str | None


@dataclass(frozen=True)
class CatalogItem:
    code: str
    activity: Activity
    offer: Offer | None = None  # how a plan offers it; None in a program's whole catalog


def _text(ctx: AppContext, value: str | None, name: str) -> str:
    return inputs.text(ctx, (value or "").strip(), name)


def _partner_ids(given: Sequence[uuid.UUID]) -> list[uuid.UUID]:
    ids = list(dict.fromkeys(given))
    if len(ids) > MAX_PARTNERS:
        raise ValidationFailed(f"at most {MAX_PARTNERS} partners take part in one activity", field="partnerIds")
    return ids


# ---- the rules ---------------------------------------------------------------------------------------


async def _require_booker(session: AsyncSession, actor: Actor, customer_id: uuid.UUID) -> None:
    """A partner books (and cancels) only for a customer it manages, and only where the link allows it.
    Customers and client managers reach only their own contracts through `load_contract_view`."""
    if actor.kind != "partner":
        return
    link = await session.scalar(policy.partner_link(actor, customer_id))
    if link is None or not link.can_book_activities:
        raise PermissionDenied(
            f"{actor.name} may not book activities for this customer: the customer has not allowed it",
            field="contractId",
        )
    if not link.managed:
        raise PermissionDenied(
            f"{actor.name} may not book activities for this customer: a partner books only for the customers "
            "it manages",
            field="contractId",
        )


def _naming_refused(actor: Actor, partner: Partner, link: PartnerCustomer) -> str | None:
    """Why `actor` may not name `partner` to take part in a customer's activity (None: it may). The customer
    names any partner it works with; a partner only itself; anyone else only partners whose link lets them
    book and take part in activities."""
    if actor.kind == "customer":
        return None
    if actor.kind == "partner" and partner.id != actor.partner_id:
        return f"{actor.name} may not name another partner ({partner.name}) to take part: that is the customer's choice"
    if not link.can_book_activities:
        return f"{partner.name} takes part in activities only if the customer allows it, and it has not"
    return None


async def _links(
    session: AsyncSession, customer_id: uuid.UUID, partner_ids: Sequence[uuid.UUID] | None = None
) -> dict[uuid.UUID, tuple[Partner, PartnerCustomer]]:
    query = (
        select(Partner, PartnerCustomer)
        .join(PartnerCustomer, PartnerCustomer.partner_id == Partner.id)
        .where(PartnerCustomer.customer_id == customer_id)
        .order_by(Partner.name)
    )
    if partner_ids is not None:
        query = query.where(Partner.id.in_(partner_ids))
    return {partner.id: (partner, link) for partner, link in await session.execute(query)}


async def _check_participants(
    session: AsyncSession, actor: Actor, customer_id: uuid.UUID, partner_ids: list[uuid.UUID]
) -> None:
    """Partners take part only where the customer allowed it (see `_naming_refused`)."""
    if not partner_ids:
        return
    links = await _links(session, customer_id, partner_ids)
    for ident in partner_ids:
        if ident not in links:
            raise ValidationFailed(f"partner {ident} does not work with this customer", field="partnerIds")
        refused = _naming_refused(actor, *links[ident])
        if refused is not None:
            raise PermissionDenied(refused, field="partnerIds")


async def participants_offered(ctx: AppContext, actor: Actor, contract_id: uuid.UUID) -> list[Partner]:
    """The partners `actor` may name to take part in an activity on the contract."""
    policy.require(actor, "booking.read")
    async with ctx.db.read() as session:
        view = await load_contract_view(session, actor, contract_id)
        links = await _links(session, view.contract.customer_id)
    return [partner for partner, link in links.values() if _naming_refused(actor, partner, link) is None]


def _offer(view: ContractView, code: str) -> Offer:
    offers = view.catalog()
    offer = offers.get(code)
    if offer is None:
        listed = "its order's list" if view.contract.catalog is not None else f"plan {view.plan.rules.name!r}"
        raise NotInCatalog(
            f"activity {code!r} is not in the catalog of contract {view.contract.reference} ({listed}); "
            f"it may book: {', '.join(offers) or 'nothing'}",
            available=list(offers),
        )
    return offer


def _charged_period(ctx: AppContext, view: ContractView, offer: Offer, day: date) -> Period:
    """The period a booking for `day` is charged to: today or later, within the contract's term."""
    contract, today = view.contract, view.today(ctx)
    first, last = max(today, contract.effective_date), contract.end_date
    if day < today:
        raise BookingDateRefused(
            f"{day} is in the past: book for {today} or later", code=ErrorCode.DATE_IN_PAST,
            earliest=first, latest=last, field="on",
        )
    if day > contract.end_date:
        raise BookingDateRefused(
            f"{day} is after contract {contract.reference} ends on {contract.end_date}",
            code=ErrorCode.AFTER_CONTRACT_END, earliest=first, latest=last, field="on",
        )
    if day < contract.effective_date:
        raise BookingDateRefused(
            f"{day} is before contract {contract.reference} starts on {contract.effective_date}",
            code=ErrorCode.BEFORE_CONTRACT_START, earliest=first, latest=last, field="on",
        )
    period = view.period(offer.bucket, day)
    assert period is not None  # the day is inside the term
    return period


def _local(view: ContractView, instant: datetime) -> datetime:
    return instant.astimezone(ZoneInfo(view.plan.program.timezone))


def _check_start(ctx: AppContext, view: ContractView, booking: Booking, starts_at: datetime) -> None:
    """A scheduled start is in the future and on a day of the period the booking was charged to."""
    if starts_at.utcoffset() is None:
        raise ValidationFailed("the start must be given with its time zone", field="startsAt")
    today = view.today(ctx)
    first, last = max(today, booking.period_start), booking.period_end
    day = _local(view, starts_at).date()
    where = f"({view.plan.program.timezone})"
    if starts_at < ctx.now():
        raise BookingDateRefused(
            f"{starts_at.isoformat()} is in the past", code=ErrorCode.DATE_IN_PAST, earliest=first, latest=last,
            field="startsAt",
        )
    if day > view.contract.end_date:
        raise BookingDateRefused(
            f"{day} {where} is after contract {view.contract.reference} ends on {view.contract.end_date}",
            code=ErrorCode.AFTER_CONTRACT_END, earliest=first, latest=last, field="startsAt",
        )
    if not booking.period_start <= day <= booking.period_end:
        raise BookingDateRefused(
            f"the booking is charged to the period {booking.period_start} to {booking.period_end} and {day} {where} "
            "is outside it: schedule it inside that period, or cancel it and book again for the other one",
            code=ErrorCode.OUTSIDE_PERIOD, earliest=first, latest=last, field="startsAt",
        )


async def _staff_member(session: AsyncSession, actor: Actor, view: ContractView, email: str | None) -> User:
    """Who delivers the activity: the staff member named, else the contract's client manager, else the
    staff user scheduling it."""
    if email is not None:
        email = email.strip().lower()
        check_email(email, field="staffEmail")
        user = await session.scalar(select(User).where(User.email == email, User.kind == UserKind.STAFF, User.active))
        if user is None:
            raise ValidationFailed(f"no active staff member has the e-mail address {email}", field="staffEmail")
        return user
    for ident in (view.contract.client_manager_id, actor.user_id if actor.kind == "staff" else None):
        user = None if ident is None else await session.get(User, ident)
        if user is not None and user.active and user.kind == UserKind.STAFF:
            return user
    raise ValidationFailed(
        "the contract has no client manager: name the staff member who delivers the activity", field="staffEmail"
    )


def ledger_unit(plan: PlanView, booking: Booking) -> str:
    """The unit of a booking's units: its bucket's ledger unit (a bucket in use keeps its unit)."""
    bucket = plan.bucket(booking.bucket_code)
    return bucket.ledger_unit if bucket is not None else "activities"


def _duration(booked_minutes: int | None, given: int | None) -> int:
    """How long a scheduled activity lasts: as given, else the hours booked, else DEFAULT_MINUTES."""
    minutes = given if given is not None else booked_minutes or DEFAULT_MINUTES
    if not 15 <= minutes <= MAX_MINUTES:
        raise ValidationFailed(f"an activity lasts 15 to {MAX_MINUTES} minutes, not {minutes}", field="durationMinutes")
    return minutes


def _require_status(booking: Booking, allowed: Sequence[BookingStatus], doing: str) -> None:
    if booking.status not in allowed:
        raise Conflict(
            f"booking {booking.id} is {booking.status.value} and cannot be {doing}",
            code=ErrorCode.WRONG_STATUS, field="bookingId", status=booking.status.value,
        )


# ---- booking, scheduling, delivering, cancelling -------------------------------------------------------


async def book_activity(ctx: AppContext, actor: Actor, new: NewBooking) -> BookingOutcome:
    """Request an activity for a contract on a day: refused, with nothing written, when the activity is not
    in the contract's catalog, the day is in the past or outside the term, or the period containing it
    has too little left."""
    policy.require(actor, "booking.create")
    inputs.text(ctx, new.activity, "activity")
    inputs.day(ctx, new.on, "on")
    note = _text(ctx, new.note, "note")
    partner_ids = _partner_ids(new.partner_ids)
    request_hash = ledger.hash_request(
        "book", activity=new.activity, on=new.on, note=note, partners=sorted(str(p) for p in partner_ids)
    )
    created: list[Booking] = []

    async def work(session: AsyncSession, view: ContractView) -> ledger.LedgerOutcome:
        contract = view.contract
        await _require_booker(session, actor, contract.customer_id)
        offer = _offer(view, new.activity)
        period = _charged_period(ctx, view, offer, new.on)
        await _check_participants(session, actor, contract.customer_id, partner_ids)
        now = ctx.now()
        booking = Booking(
            contract_id=contract.id, customer_id=contract.customer_id, activity_code=offer.code,
            activity_name=offer.activity.name, bucket_code=offer.bucket_code, units=offer.units,
            period_start=period.start, period_end=period.end, requested_date=new.on, status=BookingStatus.REQUESTED,
            note=note, requested_by_kind=actor.kind, requested_by_ref=actor.ref, requested_by_name=actor.name[:200],
            via_partner_id=actor.partner_id, revision=0, created_at=now, updated_at=now,
        )
        session.add(booking)
        await session.flush()
        session.add_all(
            BookingPartner(booking_id=booking.id, partner_id=ident, added_by_ref=actor.ref, created_at=now)
            for ident in partner_ids
        )
        outcome = await ledger.post(
            session, ctx, actor, view, period, bucket_code=offer.bucket_code, units=offer.units,
            kind=LedgerKind.CONSUME, reason=f"Booked: {offer.activity.name}", request_hash=request_hash,
            idempotency_key=new.idempotency_key,
            on_behalf_of_customer_id=contract.customer_id if actor.kind == "partner" else None,
            booking_id=booking.id,
        )
        if outcome is None:
            remaining = (await ledger.lock_balance(session, ctx, view, offer.bucket_code, period)).remaining
            unit = offer.bucket.ledger_unit
            raise InsufficientBalance(
                f"{offer.activity.name} takes {format_quantity(offer.units, unit)} and only "
                f"{format_quantity(remaining, unit)} remain of {offer.bucket.name} for {period.start} to "
                f"{period.end}: the quarter's quota would be exceeded",
                requested=offer.units, remaining=remaining, field="activity",
            )
        await audit.record(
            session, ctx, actor, "booking.create", target_type="booking", target_id=booking.id,
            on_behalf_of_customer_id=contract.customer_id,
            detail={
                "contract": contract.reference, "activity": offer.code, "on": new.on.isoformat(),
                "units": offer.units, "partners": [str(p) for p in partner_ids],
            },
        )
        await webhooks.emit(session, ctx, "booking.created", booking.customer_id, webhooks.booking_data(booking))
        await _tell_client_manager(session, ctx, actor, view, booking, offer)
        created.append(booking)
        return outcome

    outcome = await ledger.run_idempotent(ctx, actor, new.contract_id, new.idempotency_key, request_hash, work)
    if created:
        return BookingOutcome(created[0], outcome.period)
    async with ctx.db.read() as session:
        booking = await session.get(Booking, outcome.entry.booking_id)
    assert booking is not None  # the entry a replayed key names was written with its booking
    return BookingOutcome(booking, outcome.period, replayed=True)


async def _tell_client_manager(
    session: AsyncSession, ctx: AppContext, actor: Actor, view: ContractView, booking: Booking, offer: Offer
) -> None:
    """The client manager schedules what the customer's side requests: they hear of each request."""
    manager_id = view.contract.client_manager_id
    manager = None if manager_id is None or manager_id == actor.user_id else await session.get(User, manager_id)
    if manager is None or not manager.active:
        return
    await outbox.queue(
        session, ctx, kind="booking_requested", customer_id=booking.customer_id,
        dedupe_key=f"booking:{booking.id}:requested", recipient=outbox.Recipient("staff", manager.name, manager.email),
        subject=f"[{view.plan.program.provider}] To schedule: {booking.activity_name} for {view.contract.reference}",
        body=(
            f"{actor.name} requested {booking.activity_name} ({format_quantity(booking.units, offer.bucket.ledger_unit)}) "
            f"for {booking.requested_date} on contract {view.contract.reference}. It is charged to the period "
            f"{booking.period_start} to {booking.period_end}: schedule it inside that period."
            + (f"\n\nNote: {booking.note}" if booking.note else "")
            + f"\n\n{ctx.settings.link_base}/contracts/{view.contract.id}"
        ),
    )


async def _locked(session: AsyncSession, actor: Actor, booking_id: uuid.UUID) -> tuple[Booking, ContractView]:
    """The booking, locked for the rest of the transaction so state changes of one booking never
    interleave, and its contract as the actor sees it."""
    booking = await session.scalar(
        policy.visible_bookings(actor).where(Booking.id == booking_id).with_for_update()
    )
    if booking is None:
        raise NotFound("booking", booking_id, field="bookingId")
    return booking, await load_contract_view(session, actor, booking.contract_id)


def _when(view: ContractView, booking: Booking) -> str:
    assert booking.starts_at is not None
    local = _local(view, booking.starts_at)
    return f"{local:%A %Y-%m-%d %H:%M} ({view.plan.program.timezone})"


async def _notify(
    session: AsyncSession, ctx: AppContext, booking: Booking, kind: str, subject: str, body: str
) -> None:
    """The customer's correspondent hears of it, and so does every other partner taking part."""
    key = f"booking:{booking.id}:{kind}:{booking.revision}"
    correspondent = await access.correspondent_in(session, booking.customer_id)
    await outbox.queue(
        session, ctx, kind=kind, customer_id=booking.customer_id, dedupe_key=key, subject=subject, body=body,
        recipient=outbox.Recipient(correspondent.kind, correspondent.name, correspondent.email),
    )
    for partner in await session.scalars(
        select(Partner)
        .join(BookingPartner, BookingPartner.partner_id == Partner.id)
        .where(BookingPartner.booking_id == booking.id)
        .order_by(Partner.code)
    ):
        if partner.id != correspondent.partner_id:
            await outbox.queue(
                session, ctx, kind=kind, customer_id=booking.customer_id, dedupe_key=f"{key}:partner:{partner.id}",
                subject=subject, body=body, recipient=outbox.Recipient("partner", partner.name, partner.email),
            )


async def _replace_participants(
    session: AsyncSession, ctx: AppContext, actor: Actor, booking: Booking, partner_ids: list[uuid.UUID]
) -> None:
    """Those taking part become `partner_ids`; only partners added now need the customer's allowance checked
    (one the customer chose stays, whoever resends the list)."""
    current = {
        row.partner_id: row
        for row in await session.scalars(select(BookingPartner).where(BookingPartner.booking_id == booking.id))
    }
    await _check_participants(session, actor, booking.customer_id, [p for p in partner_ids if p not in current])
    for ident, row in current.items():
        if ident not in partner_ids:
            await session.delete(row)
    session.add_all(
        BookingPartner(booking_id=booking.id, partner_id=ident, added_by_ref=actor.ref, created_at=ctx.now())
        for ident in partner_ids
        if ident not in current
    )


async def _change(
    session: AsyncSession,
    ctx: AppContext,
    actor: Actor,
    booking: Booking,
    status: BookingStatus,
    action: str,
    *,
    detail: dict[str, object] | None = None,
    **fields: object,
) -> None:
    """Move a locked booking to `status` with the fields given, raise its revision (so subscribed calendars
    take the change) and write the audit entry, in the caller's transaction."""
    booking.status = status
    for name, value in fields.items():
        setattr(booking, name, value)
    booking.revision += 1
    booking.updated_at = ctx.now()
    await session.flush()
    await audit.record(
        session, ctx, actor, action, target_type="booking", target_id=booking.id,
        on_behalf_of_customer_id=booking.customer_id, detail=detail,
    )
    await webhooks.emit(session, ctx, webhooks.BOOKING_EVENTS[action], booking.customer_id, webhooks.booking_data(booking))


async def schedule_booking(ctx: AppContext, actor: Actor, request: Schedule) -> Booking:
    """Fix when a requested activity takes place and who delivers it, or move a scheduled one, always
    inside the period it was charged to; the customer's correspondent (and partners taking part) are told."""
    policy.require(actor, "booking.manage")
    inputs.instant(ctx, request.starts_at, "startsAt")
    partner_ids = None if request.partner_ids is None else _partner_ids(request.partner_ids)
    async with ctx.db.write() as session:
        booking, view = await _locked(session, actor, request.booking_id)
        _require_status(booking, _OPEN, "scheduled")
        _check_start(ctx, view, booking, request.starts_at)
        unit = ledger_unit(view.plan, booking)
        minutes = _duration(booking.units if unit == "minutes" else None, request.duration_minutes)
        staff = await _staff_member(session, actor, view, request.staff_email)
        if partner_ids is not None:
            await _replace_participants(session, ctx, actor, booking, partner_ids)
        rescheduled = booking.status == BookingStatus.SCHEDULED
        starts_at = request.starts_at.astimezone(UTC)
        action = "booking.reschedule" if rescheduled else "booking.schedule"
        await _change(
            session, ctx, actor, booking, BookingStatus.SCHEDULED, action,
            detail={"starts_at": starts_at.isoformat(), "minutes": minutes, "staff": staff.email},
            starts_at=starts_at, ends_at=starts_at + timedelta(minutes=minutes), staff_id=staff.id,
        )
        provider = view.plan.program.provider
        await _notify(
            session, ctx, booking, "booking_scheduled",
            f"[{provider}] {'Moved' if rescheduled else 'Scheduled'}: {booking.activity_name} on {_when(view, booking)}",
            f"{booking.activity_name} for contract {view.contract.reference} takes place on {_when(view, booking)} "
            f"for {minutes} minutes, with {staff.name}. It uses {format_quantity(booking.units, unit)} of the period "
            f"{booking.period_start} to {booking.period_end}.",
        )
        return booking


async def deliver_booking(ctx: AppContext, actor: Actor, booking_id: uuid.UUID, note: str = "") -> Booking:
    """Record that a scheduled activity took place; its units stay consumed."""
    policy.require(actor, "booking.manage")
    text = _text(ctx, note, "note")
    async with ctx.db.write() as session:
        booking, _ = await _locked(session, actor, booking_id)
        _require_status(booking, (BookingStatus.SCHEDULED,), "delivered (only a scheduled booking is)")
        now = ctx.now()
        assert booking.starts_at is not None
        if now < booking.starts_at:
            raise ValidationFailed(
                f"the activity is scheduled to start at {booking.starts_at.isoformat()}; it is delivered once it has "
                "taken place",
                field="bookingId",
            )
        await _change(
            session, ctx, actor, booking, BookingStatus.DELIVERED, "booking.deliver", delivered_at=now,
            delivery_note=text or None,
        )
        return booking


async def cancel_booking(ctx: AppContext, actor: Actor, booking_id: uuid.UUID, reason: str = "") -> BookingOutcome:
    """Cancel a requested or scheduled activity and give its units back to the period it was charged to
    (where that period has ended, they come back only to expire with it)."""
    policy.require(actor, "booking.cancel")
    text = _text(ctx, reason, "reason")
    async with ctx.db.write() as session:
        booking, view = await _locked(session, actor, booking_id)
        await _require_booker(session, actor, booking.customer_id)
        _require_status(booking, _OPEN, "cancelled")
        taken = await session.scalar(
            select(LedgerEntry).where(LedgerEntry.booking_id == booking.id, LedgerEntry.kind == LedgerKind.CONSUME)
        )
        assert taken is not None  # every booking is written with its consumption
        outcome = await ledger.post_in_session(
            session, ctx, actor, view, Period(0, taken.period_start, taken.period_end), bucket_code=taken.bucket_code,
            units=-taken.quantity, kind=LedgerKind.REVERSE, reason=f"Cancelled: {booking.activity_name}"
            + (f" ({text})" if text else ""), on_behalf_of_customer_id=taken.on_behalf_of_customer_id, reverses=taken,
            booking_id=booking.id,
        )
        if outcome is None:  # pragma: no cover - the booking's own units are part of what was consumed
            raise Conflict(f"booking {booking.id}'s units cannot be given back", code=ErrorCode.NOT_REVERSIBLE)
        was_scheduled = booking.status == BookingStatus.SCHEDULED
        await _change(
            session, ctx, actor, booking, BookingStatus.CANCELLED, "booking.cancel",
            detail={"reason": text, "units": taken.quantity}, cancelled_at=ctx.now(), cancel_reason=text or None,
        )
        if was_scheduled:
            await _notify(
                session, ctx, booking, "booking_cancelled",
                f"[{view.plan.program.provider}] Cancelled: {booking.activity_name} on {_when(view, booking)}",
                f"{booking.activity_name} for contract {view.contract.reference}, scheduled for {_when(view, booking)}, "
                "is cancelled" + (f": {text}" if text else ".") + " Its units are available again in the period "
                f"{booking.period_start} to {booking.period_end}.",
            )
        return BookingOutcome(booking, outcome.period)


# ---- reading -------------------------------------------------------------------------------------------


def booking_cursor(booking: Booking) -> str:
    return encode_cursor(booking.created_at, booking.id)


async def list_bookings(
    ctx: AppContext,
    actor: Actor,
    *,
    contract_id: uuid.UUID | None = None,
    customer_id: uuid.UUID | None = None,
    status: BookingStatus | None = None,
    first: int = 50,
    after: str | None = None,
) -> BookingPage:
    """The bookings the actor sees, newest first, paged by keyset on (created_at, id)."""
    policy.require(actor, "booking.read")
    query = newest_first(policy.visible_bookings(actor), Booking.created_at, Booking.id, first=first, after=after)
    if contract_id is not None:
        query = query.where(Booking.contract_id == contract_id)
    if customer_id is not None:
        query = query.where(Booking.customer_id == customer_id)
    if status is not None:
        query = query.where(Booking.status == status)
    async with ctx.db.read() as session:
        found = list(await session.scalars(query))
    return BookingPage(*cut_page(found, first, booking_cursor))


async def get_bookings(ctx: AppContext, actor: Actor, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Booking]:
    policy.require(actor, "booking.read")
    async with ctx.db.read() as session:
        rows = await session.scalars(policy.visible_bookings(actor).where(Booking.id.in_(set(ids))))
        return {row.id: row for row in rows}


async def booking_details(ctx: AppContext, actor: Actor, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, BookingDetails]:
    """The partners taking part in, and the ledger entries of, the visible bookings among `ids`: three
    statements for any number."""
    policy.require(actor, "booking.read")
    async with ctx.db.read() as session:
        visible = list(
            await session.scalars(
                policy.visible_bookings(actor).where(Booking.id.in_(set(ids))).with_only_columns(Booking.id)
            )
        )
        found = {ident: BookingDetails() for ident in visible}
        if not visible:
            return found
        for booking_id, partner in await session.execute(
            select(BookingPartner.booking_id, Partner)
            .join(Partner, Partner.id == BookingPartner.partner_id)
            .where(BookingPartner.booking_id.in_(visible))
            .order_by(Partner.code)
        ):
            found[booking_id].partners.append(partner)
        for entry in await session.scalars(
            # A consumption before its reversal, even when both were written at the same instant.
            select(LedgerEntry)
            .where(LedgerEntry.booking_id.in_(visible))
            .order_by(LedgerEntry.created_at, LedgerEntry.reverses_entry_id.is_not(None), LedgerEntry.id)
        ):
            found[entry.booking_id].entries.append(entry)
        return found


async def activity_catalog(
    ctx: AppContext, actor: Actor, program_code: str, plan_code: str | None = None
) -> list[CatalogItem]:
    """A program's activity catalog; with a plan, what that plan offers, each with the bucket it is charged
    to and its cost in ledger units."""
    record, plans = await get_program(ctx, actor, program_code)
    if plan_code is None:
        return [CatalogItem(code, activity) for code, activity in program_model(record).catalog.items()]
    view = next((p for p in plans if p.record.code == plan_code), None)
    if view is None:
        raise NotFound("plan", f"{program_code}/{plan_code}", field="planCode")
    return [CatalogItem(code, offer.activity, offer) for code, offer in plan_catalog(view.program, view.rules).items()]

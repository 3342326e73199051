"""Calendar feeds: a secret, revocable URL per contract serving its scheduled activities and the end of
each entitlement period as iCalendar, for any calendar application to subscribe to. The secret is the
only credential a calendar application can send: only its hash is kept, and revoking the feed stops the
URL at once."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from icalendar import Calendar, Event
from sqlalchemy import select

from api.domain.periods import periods_of_term
from api.domain.units import format_quantity
from api.models import Booking, BookingStatus, CalendarFeed, Contract, EntitlementBalance, User
from api.services import audit, bookings, inputs, policy
from api.services.context import Actor, AppContext
from api.services.contracts import ContractView, load_contract_view
from api.services.errors import NotFound, PermissionDenied

__all__ = ["FEED_ACTOR", "create_feed", "feed_url", "list_feeds", "render_feed", "revoke_feed"]

# The feed reads as the system: the secret in its URL, checked here, is what grants it.
FEED_ACTOR = Actor.system("calendar-feed", interface="calendar")
_SHOWN = (BookingStatus.SCHEDULED, BookingStatus.DELIVERED, BookingStatus.CANCELLED)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def feed_url(ctx: AppContext, secret: str, base: str | None = None) -> str:
    """The feed's address: under ENTITLE_PUBLIC_URL when set, else under `base` (the address the request came
    in on), else under the address the server was started on."""
    root = ctx.settings.public_url or (base.rstrip("/") if base else None) or ctx.settings.link_base
    return f"{root}/calendar/{secret}.ics"


async def create_feed(ctx: AppContext, actor: Actor, contract_id: uuid.UUID, name: str = "") -> tuple[CalendarFeed, str]:
    """A new feed for a contract the actor sees, and its secret: shown this once, never stored."""
    policy.require(actor, "feed.manage")
    label = inputs.text(ctx, (name or "").strip(), "name") or "Activities and period ends"
    secret = secrets.token_urlsafe(32)
    async with ctx.db.write() as session:
        view = await load_contract_view(session, actor, contract_id)
        feed = CalendarFeed(
            contract_id=view.contract.id, name=label, secret_hash=_digest(secret), created_by_ref=actor.ref,
            created_by_name=actor.name[:200], created_at=ctx.now(),
        )
        session.add(feed)
        await session.flush()
        await audit.record(
            session, ctx, actor, "calendar_feed.create", target_type="calendar_feed", target_id=feed.id,
            on_behalf_of_customer_id=view.contract.customer_id, detail={"contract": view.contract.reference},
        )
    return feed, secret


async def revoke_feed(ctx: AppContext, actor: Actor, feed_id: uuid.UUID) -> CalendarFeed:
    """Stop a feed's URL; revoking a revoked feed changes nothing."""
    policy.require(actor, "feed.manage")
    async with ctx.db.write() as session:
        feed = await session.scalar(
            select(CalendarFeed)
            .where(CalendarFeed.id == feed_id)
            .where(CalendarFeed.contract_id.in_(policy.visible_contract_ids(actor)))
        )
        if feed is None:
            raise NotFound("calendar feed", feed_id, field="id")
        customer_id = await session.scalar(select(Contract.customer_id).where(Contract.id == feed.contract_id))
        link = await session.scalar(policy.partner_link(actor, customer_id)) if actor.kind == "partner" else None
        if not policy.may_revoke_feed(actor, feed.created_by_ref, link=link):
            raise PermissionDenied(
                f"{actor.name} may not revoke this feed: a partner that does not manage the customer revokes only "
                "the feeds it created",
                field="id",
            )
        if feed.revoked_at is None:
            feed.revoked_at = ctx.now()
            await audit.record(
                session, ctx, actor, "calendar_feed.revoke", target_type="calendar_feed", target_id=feed.id,
                on_behalf_of_customer_id=customer_id,
            )
        return feed


async def list_feeds(
    ctx: AppContext, actor: Actor, contract_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[CalendarFeed]]:
    """The feeds of each visible contract, newest first, without their secrets."""
    policy.require(actor, "contract.read")
    found: dict[uuid.UUID, list[CalendarFeed]] = {ident: [] for ident in contract_ids}
    async with ctx.db.read() as session:
        for feed in await session.scalars(
            select(CalendarFeed)
            .where(CalendarFeed.contract_id.in_(set(contract_ids)))
            .where(CalendarFeed.contract_id.in_(policy.visible_contract_ids(actor)))
            .order_by(CalendarFeed.created_at.desc(), CalendarFeed.id.desc())
        ):
            found[feed.contract_id].append(feed)
    return found


async def render_feed(ctx: AppContext, secret: str) -> tuple[str, bytes]:
    """The iCalendar text of the feed a secret opens, with a file name; NotFound for an unknown or
    revoked secret (the same answer for both)."""
    async with ctx.db.read() as session:
        feed = await session.scalar(select(CalendarFeed).where(CalendarFeed.secret_hash == _digest(secret)))
        if feed is None or feed.revoked_at is not None:
            raise NotFound("calendar feed", "for this address")
        view = await load_contract_view(session, FEED_ACTOR, feed.contract_id)
        booked = list(
            await session.scalars(
                select(Booking)
                .where(Booking.contract_id == feed.contract_id, Booking.status.in_(_SHOWN))
                .where(Booking.starts_at.is_not(None))
                .order_by(Booking.starts_at, Booking.id)
            )
        )
        staff_ids = {b.staff_id for b in booked if b.staff_id is not None}
        staff = {u.id: u for u in await session.scalars(select(User).where(User.id.in_(staff_ids)))} if staff_ids else {}
        balances = {
            (code, start): consumed
            for code, start, consumed in await session.execute(
                select(EntitlementBalance.bucket_code, EntitlementBalance.period_start, EntitlementBalance.consumed)
                .where(EntitlementBalance.contract_id == feed.contract_id)
            )
        }
    calendar = _calendar(ctx, view, feed, booked, staff, balances)
    return f"{view.contract.reference}.ics", calendar.to_ical()


def _calendar(
    ctx: AppContext,
    view: ContractView,
    feed: CalendarFeed,
    booked: list[Booking],
    staff: dict[uuid.UUID, User],
    balances: dict[tuple[str, object], int],
) -> Calendar:
    contract, program = view.contract, view.plan.program
    now = ctx.now()
    calendar = Calendar.new(
        prodid="-//Entitle//Activity calendar//EN",
        name=f"{contract.reference}: {feed.name}",
        description=f"{view.plan.rules.name} ({program.provider}): scheduled activities and the end of each period.",
        refresh_interval=timedelta(hours=1),
        uid=f"feed-{feed.id}@entitle",
    )
    for booking in booked:
        calendar.add_component(_booking_event(ctx, view, booking, staff.get(booking.staff_id), now))
    for code, bucket in view.plan.rules.buckets.items():
        allowance = view.allowance(code)
        for period in periods_of_term(
            effective_date=contract.effective_date, end_date=contract.end_date, length=bucket.period, anchor=bucket.anchor
        ):
            remaining = allowance - balances.get((code, period.start), 0)
            left = f"{format_quantity(remaining, bucket.ledger_unit)} of {format_quantity(allowance, bucket.ledger_unit)}"
            event = Event.new(
                uid=f"period-{contract.id}-{code}-{period.start.isoformat()}@entitle",
                summary=f"{bucket.name} period ends ({contract.reference})",
                description=(
                    f"The period {period.start} to {period.end} of {bucket.name} ends today. "
                    + (f"{left} unused, which expire tonight and are not carried over."
                       if period.end >= view.today(ctx) else f"{left} were left unused and expired.")
                ),
                start=period.end,
                end=period.end + timedelta(days=1),
                stamp=now,
                transparency="TRANSPARENT",
            )
            calendar.add_component(event)
    return calendar


def _booking_event(ctx: AppContext, view: ContractView, booking: Booking, staff: User | None, now: datetime) -> Event:
    assert booking.starts_at is not None and booking.ends_at is not None
    unit = bookings.ledger_unit(view.plan, booking)
    lines = [
        f"{booking.activity_name} for contract {view.contract.reference} ({view.plan.rules.name}).",
        f"Uses {format_quantity(booking.units, unit)} of the period {booking.period_start} to {booking.period_end}.",
    ]
    if staff is not None:
        lines.append(f"Delivered by {staff.name}.")
    if booking.note:
        lines.append(f"Note: {booking.note}")
    if booking.status == BookingStatus.CANCELLED and booking.cancel_reason:
        lines.append(f"Cancelled: {booking.cancel_reason}")
    return Event.new(
        uid=f"booking-{booking.id}@entitle",
        summary=f"{booking.activity_name} ({view.contract.reference})",
        description="\n".join(lines),
        start=booking.starts_at,
        end=booking.ends_at,
        stamp=now,
        sequence=booking.revision,
        status="CANCELLED" if booking.status == BookingStatus.CANCELLED else "CONFIRMED",
        location="Remote" if view.plan.program.remote_only else None,
        url=f"{ctx.settings.link_base}/contracts/{view.contract.id}",
    )

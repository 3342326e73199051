"""Bookings at service level, with real actors: who may book (partners only where they manage the
customer and the link allows it), who takes part, scheduling (staff, length, revisions and the messages
they queue), delivering, cancelling into an ended period, order catalogs, expiry flags, and a random walk
whose balances always equal its bookings and its ledger."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, settings as hypothesis_settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test
from sqlalchemy import func, select

from api.config import Settings
from api.db import Database
from api.models import (
    AuditEntry,
    Booking,
    BookingPartner,
    BookingStatus,
    Contract,
    EntitlementBalance,
    LedgerEntry,
    LedgerKind,
    OutboxMessage,
    StaffRole,
    User,
    UserKind,
)
from api.programs.loader import parse_program
from api.services import bookings, contracts, identity, ledger, parties, programs
from api.services.bookings import NewBooking, Schedule
from api.services.context import Actor, AppContext, FixedClock
from api.services.errors import (
    Conflict,
    DomainError,
    ErrorCode,
    NotFound,
    NotInCatalog,
    PermissionDenied,
    ValidationFailed,
)
from tests.conftest import ADMIN, NOW, unique
from tests.factories import small_program

Q1 = date(2026, 2, 15)  # the default contract's first quarter: 2026-02-15 .. 2026-05-14
Q1_END = date(2026, 5, 14)
Q2 = date(2026, 5, 15)
APRIL_1 = date(2026, 4, 1)
PROVIDER = "Assure Advisory Services"


def at(day: date, hour: int = 9, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def customer_actor(customer_id: uuid.UUID) -> Actor:
    return Actor(kind="customer", ref=f"user:{uuid.uuid4()}", name="A customer user", customer_id=customer_id)


def partner_actor(partner) -> Actor:  # type: ignore[no-untyped-def]
    return Actor(kind="partner", ref=f"user:{uuid.uuid4()}", name=f"User of {partner.name}", partner_id=partner.id)


async def make_partner(ctx: AppContext):  # type: ignore[no-untyped-def]
    code = unique("partner")
    return await parties.create_partner(
        ctx, ADMIN, parties.NewPartner(code=code, name=f"Partner {code}", email=f"{code}@partners.example")
    )


async def link(ctx: AppContext, partner, customer, *, managed: bool, can_book: bool) -> None:  # type: ignore[no-untyped-def]
    await parties.link_partner(
        ctx, ADMIN, partner_id=partner.id, customer_id=customer.id, managed=managed, production_access=False,
        can_book_activities=can_book,
    )


async def make_staff(ctx: AppContext, name: str, role: StaffRole = StaffRole.CLIENT_MANAGER):  # type: ignore[no-untyped-def]
    email = f"{unique('staff')}@bookings.example"
    return await identity.create_user(
        ctx, ADMIN, identity.NewUser(email, name, "a long staff password", UserKind.STAFF, staff_role=role)
    )


@pytest.fixture
async def manager(ctx):  # type: ignore[no-untyped-def]
    return await make_staff(ctx, "Carla Client-Manager")


@pytest.fixture
async def customer(make_customer):  # type: ignore[no-untyped-def]
    code = unique("customer")
    return await make_customer(code=code, name=f"Customer {code}", email=f"{code}@customers.example")


async def book(  # type: ignore[no-untyped-def]
    ctx: AppContext, actor: Actor, contract_id: uuid.UUID, activity: str = "code-review", on: date = APRIL_1, **fields
) -> bookings.BookingOutcome:
    return await bookings.book_activity(ctx, actor, NewBooking(contract_id, activity, on, **fields))


async def schedule(ctx: AppContext, actor: Actor, booking_id: uuid.UUID, starts_at: datetime, **fields: Any) -> Booking:
    return await bookings.schedule_booking(ctx, actor, Schedule(booking_id, starts_at, **fields))


async def traces(ctx: AppContext, customer_id: uuid.UUID) -> dict[str, Any]:
    """Everything a refusal must leave alone for one customer: bookings and the partners taking part,
    ledger entries, balances, audit entries and outbox messages."""
    async with ctx.db.read() as session:
        contract_ids = select(Contract.id).where(Contract.customer_id == customer_id)
        booking_rows = (
            await session.execute(
                select(Booking.id, Booking.status, Booking.revision, Booking.starts_at, Booking.staff_id)
                .where(Booking.customer_id == customer_id)
                .order_by(Booking.id)
            )
        ).all()
        partners = (
            await session.execute(
                select(BookingPartner.booking_id, BookingPartner.partner_id)
                .where(BookingPartner.booking_id.in_(select(Booking.id).where(Booking.customer_id == customer_id)))
                .order_by(BookingPartner.booking_id, BookingPartner.partner_id)
            )
        ).all()
        entries = (
            await session.execute(
                select(LedgerEntry.id, LedgerEntry.quantity).where(LedgerEntry.contract_id.in_(contract_ids)).order_by(LedgerEntry.id)
            )
        ).all()
        balances = (
            await session.execute(
                select(EntitlementBalance.contract_id, EntitlementBalance.period_start, EntitlementBalance.consumed)
                .where(EntitlementBalance.contract_id.in_(contract_ids))
                .order_by(EntitlementBalance.contract_id, EntitlementBalance.period_start)
            )
        ).all()
        audits = await session.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.on_behalf_of_customer_id == customer_id)
        )
        outbox = await session.scalar(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.customer_id == customer_id)
        )
    return {
        "bookings": [tuple(r) for r in booking_rows], "partners": [tuple(r) for r in partners],
        "entries": [tuple(r) for r in entries], "balances": [tuple(r) for r in balances],
        "audits": audits, "outbox": outbox,
    }


async def refused(ctx: AppContext, customer_id: uuid.UUID, call, error: type[DomainError]) -> DomainError:  # type: ignore[no-untyped-def]
    """The refusal `call` raises; nothing of the customer's may change."""
    before = await traces(ctx, customer_id)
    with pytest.raises(error) as raised:
        await call
    assert await traces(ctx, customer_id) == before
    return raised.value


async def messages(ctx: AppContext, customer_id: uuid.UUID, kind: str | None = None) -> list[OutboxMessage]:
    async with ctx.db.read() as session:
        query = select(OutboxMessage).where(OutboxMessage.customer_id == customer_id)
        if kind is not None:
            query = query.where(OutboxMessage.kind == kind)
        return list(await session.scalars(query.order_by(OutboxMessage.dedupe_key)))


def addressed(found: list[OutboxMessage]) -> list[tuple[str, str, str, str | None]]:
    return [(m.dedupe_key, m.recipient_kind, m.recipient_name, m.recipient_email) for m in found]


async def audit_actions(ctx: AppContext, target_id: uuid.UUID) -> Counter[str]:
    async with ctx.db.read() as session:
        return Counter(await session.scalars(select(AuditEntry.action).where(AuditEntry.target_id == str(target_id))))


async def stored(ctx: AppContext, booking_id: uuid.UUID) -> Booking:
    async with ctx.db.read() as session:
        booking = await session.get(Booking, booking_id)
    assert booking is not None
    return booking


async def booking_entries(ctx: AppContext, booking_id: uuid.UUID) -> list[tuple[LedgerKind, int, date]]:
    async with ctx.db.read() as session:
        rows = await session.execute(
            select(LedgerEntry.kind, LedgerEntry.quantity, LedgerEntry.period_start)
            .where(LedgerEntry.booking_id == booking_id)
            .order_by(LedgerEntry.quantity.desc())
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


async def participants(ctx: AppContext, booking_id: uuid.UUID) -> set[uuid.UUID]:
    details = await bookings.booking_details(ctx, ADMIN, [booking_id])
    return {p.id for p in details[booking_id].partners}


# ---- partners booking ----------------------------------------------------------------------------------


async def test_a_partner_books_only_for_a_customer_it_manages_where_the_link_allows_it(
    ctx, customer, make_contract, manager
):
    contract = await make_contract(customer=customer, client_manager_email=manager.email)
    not_allowed, not_managing, neither, unlinked, managing = [await make_partner(ctx) for _ in range(5)]
    await link(ctx, not_allowed, customer, managed=True, can_book=False)
    await link(ctx, not_managing, customer, managed=False, can_book=True)
    await link(ctx, neither, customer, managed=False, can_book=False)
    await link(ctx, managing, customer, managed=True, can_book=True)

    for partner, why in (
        (not_allowed, "the customer has not allowed it"),
        (neither, "the customer has not allowed it"),
        (not_managing, "a partner books only for the customers it manages"),
    ):
        denied = await refused(ctx, customer.id, book(ctx, partner_actor(partner), contract.id), PermissionDenied)
        assert denied.message == f"User of {partner.name} may not book activities for this customer: {why}"
        assert (denied.code, denied.field) == (ErrorCode.PERMISSION_DENIED, "contractId")
    # A partner with no link does not even see the contract.
    hidden = await refused(ctx, customer.id, book(ctx, partner_actor(unlinked), contract.id), NotFound)
    assert hidden.message == f"contract {contract.id} does not exist"

    outcome = await book(ctx, partner_actor(managing), contract.id, "code-review", note="before the release")
    booking = outcome.booking
    assert (booking.status, booking.requested_by_kind, booking.via_partner_id, booking.customer_id, booking.units) == (
        BookingStatus.REQUESTED, "partner", managing.id, customer.id, 2
    )
    assert (outcome.period.consumed, outcome.period.remaining, outcome.replayed) == (2, 3, False)
    async with ctx.db.read() as session:
        entry = await session.scalar(select(LedgerEntry).where(LedgerEntry.booking_id == booking.id))
        created = await session.scalar(
            select(AuditEntry).where(AuditEntry.target_id == str(booking.id), AuditEntry.action == "booking.create")
        )
    assert (entry.kind, entry.quantity, entry.on_behalf_of_customer_id, entry.actor_kind) == (
        LedgerKind.CONSUME, 2, customer.id, "partner"
    )
    assert (created.partner_id, created.on_behalf_of_customer_id) == (managing.id, customer.id)

    # A partner that may not book may not cancel either, though it sees the booking.
    denied = await refused(
        ctx, customer.id, bookings.cancel_booking(ctx, partner_actor(not_allowed), booking.id), PermissionDenied
    )
    assert denied.message.endswith("may not book activities for this customer: the customer has not allowed it")
    cancelled = await bookings.cancel_booking(ctx, partner_actor(managing), booking.id, "moved to next quarter")
    assert (cancelled.booking.status, cancelled.period.consumed) == (BookingStatus.CANCELLED, 0)


# ---- who takes part ----------------------------------------------------------------------------------


async def test_the_customer_names_any_linked_partner_others_only_those_allowed_to_book(
    ctx, customer, make_contract, manager
):
    contract = await make_contract(customer=customer, client_manager_email=manager.email)
    works_with, may_book, stranger, managing = [await make_partner(ctx) for _ in range(4)]
    await link(ctx, works_with, customer, managed=False, can_book=False)
    await link(ctx, may_book, customer, managed=False, can_book=True)
    await link(ctx, managing, customer, managed=True, can_book=True)
    me = customer_actor(customer.id)
    cm = identity.actor_for_user(manager)

    chosen = await book(ctx, me, contract.id, "advisory-call", partner_ids=[works_with.id, may_book.id, works_with.id])
    assert await participants(ctx, chosen.booking.id) == {works_with.id, may_book.id}

    for actor in (cm, ADMIN):
        denied = await refused(ctx, customer.id, book(ctx, actor, contract.id, "advisory-call", partner_ids=[works_with.id]), PermissionDenied)
        assert denied.message == f"{works_with.name} takes part in activities only if the customer allows it, and it has not"
        assert denied.field == "partnerIds"
    by_cm = await book(ctx, cm, contract.id, "advisory-call", partner_ids=[may_book.id])
    assert await participants(ctx, by_cm.booking.id) == {may_book.id}

    for actor in (me, cm, partner_actor(managing)):
        unknown = await refused(ctx, customer.id, book(ctx, actor, contract.id, "advisory-call", partner_ids=[stranger.id]), ValidationFailed)
        assert (unknown.message, unknown.field) == (f"partner {stranger.id} does not work with this customer", "partnerIds")

    # A partner names only itself.
    other = await refused(
        ctx, customer.id, book(ctx, partner_actor(managing), contract.id, "advisory-call", partner_ids=[may_book.id]),
        PermissionDenied,
    )
    assert other.message == (
        f"User of {managing.name} may not name another partner ({may_book.name}) to take part: that is the "
        "customer's choice"
    )
    itself = await book(ctx, partner_actor(managing), contract.id, "advisory-call", partner_ids=[managing.id])
    assert await participants(ctx, itself.booking.id) == {managing.id}
    assert (itself.period.consumed, itself.period.remaining) == (3, 2)


async def test_scheduling_with_partner_ids_replaces_those_taking_part(ctx, customer, make_contract, manager):
    contract = await make_contract(customer=customer, client_manager_email=manager.email)
    works_with, may_book, also = [await make_partner(ctx) for _ in range(3)]
    await link(ctx, works_with, customer, managed=False, can_book=False)
    await link(ctx, may_book, customer, managed=False, can_book=True)
    await link(ctx, also, customer, managed=False, can_book=True)
    booking = (await book(ctx, customer_actor(customer.id), contract.id, partner_ids=[works_with.id, may_book.id])).booking

    # The partner the customer chose stays when staff resend the list with it...
    await schedule(ctx, ADMIN, booking.id, at(APRIL_1, 8), partner_ids=[works_with.id, may_book.id, also.id])
    assert await participants(ctx, booking.id) == {works_with.id, may_book.id, also.id}
    await schedule(ctx, ADMIN, booking.id, at(APRIL_1), partner_ids=[also.id, may_book.id])
    assert await participants(ctx, booking.id) == {may_book.id, also.id}
    # ... but once dropped, staff may not add it back: the customer did not allow it to book.
    denied = await refused(
        ctx, customer.id, schedule(ctx, ADMIN, booking.id, at(APRIL_1), partner_ids=[works_with.id]), PermissionDenied
    )
    assert denied.field == "partnerIds"
    await schedule(ctx, ADMIN, booking.id, at(APRIL_1, 10))  # None keeps those taking part
    assert await participants(ctx, booking.id) == {may_book.id, also.id}
    await schedule(ctx, ADMIN, booking.id, at(APRIL_1, 11), partner_ids=[also.id])
    assert await participants(ctx, booking.id) == {also.id}
    await schedule(ctx, ADMIN, booking.id, at(APRIL_1, 12), partner_ids=[])
    assert await participants(ctx, booking.id) == set()
    assert (await stored(ctx, booking.id)).revision == 5


# ---- scheduling ------------------------------------------------------------------------------------------


async def test_the_default_staff_member_is_the_contracts_client_manager(ctx, customer, make_contract, manager):
    contract = await make_contract(customer=customer, client_manager_email=manager.email)
    booking = (await book(ctx, customer_actor(customer.id), contract.id)).booking
    done = await schedule(ctx, ADMIN, booking.id, at(APRIL_1, 9, 30))
    assert (done.status, done.staff_id, done.revision) == (BookingStatus.SCHEDULED, manager.id, 1)
    assert (done.starts_at, done.ends_at) == (at(APRIL_1, 9, 30), at(APRIL_1, 10, 30))
    row = await stored(ctx, booking.id)
    assert (row.status, row.staff_id, row.starts_at, row.ends_at) == (
        BookingStatus.SCHEDULED, manager.id, at(APRIL_1, 9, 30), at(APRIL_1, 10, 30)
    )


async def test_without_a_client_manager_the_staff_member_must_be_named(ctx, customer, make_contract):
    contract = await make_contract(customer=customer)
    booking = (await book(ctx, customer_actor(customer.id), contract.id)).booking

    missing = await refused(ctx, customer.id, schedule(ctx, ADMIN, booking.id, at(APRIL_1)), ValidationFailed)
    assert (missing.message, missing.field) == (
        "the contract has no client manager: name the staff member who delivers the activity", "staffEmail"
    )
    unknown = await refused(
        ctx, customer.id, schedule(ctx, ADMIN, booking.id, at(APRIL_1), staff_email="nobody@staff.example"),
        ValidationFailed,
    )
    assert (unknown.message, unknown.field) == ("no active staff member has the e-mail address nobody@staff.example", "staffEmail")
    malformed = await refused(ctx, customer.id, schedule(ctx, ADMIN, booking.id, at(APRIL_1), staff_email="nobody"), ValidationFailed)
    assert malformed.field == "staffEmail"
    # A customer user's address is no staff member's.
    user = await identity.create_user(
        ctx, ADMIN,
        identity.NewUser(f"{unique('cust')}@customers.example", "Cus Tomer", "a long customer password", UserKind.CUSTOMER,
                         customer_id=customer.id),
    )
    not_staff = await refused(ctx, customer.id, schedule(ctx, ADMIN, booking.id, at(APRIL_1), staff_email=user.email), ValidationFailed)
    assert not_staff.field == "staffEmail"

    engineer = await make_staff(ctx, "Eve Engineer", StaffRole.SUPPORT_ENGINEER)
    named = await schedule(ctx, ADMIN, booking.id, at(APRIL_1), staff_email=f"  {engineer.email.upper()} ")
    assert named.staff_id == engineer.id
    # A staff user scheduling without naming anyone delivers it themselves.
    admin_user = await make_staff(ctx, "Ada Admin", StaffRole.ADMIN)
    moved = await schedule(ctx, identity.actor_for_user(admin_user), booking.id, at(APRIL_1, 14))
    assert (moved.staff_id, moved.revision) == (admin_user.id, 2)


async def test_the_length_defaults_to_an_hour_or_the_activitys_hours_and_is_bounded(ctx, make_contract, manager):
    small = await make_contract(client_manager_email=manager.email)
    call = (await book(ctx, ADMIN, small.id, "advisory-call")).booking
    assert (await schedule(ctx, ADMIN, call.id, at(APRIL_1))).ends_at == at(APRIL_1, 10)
    for minutes, ends in ((15, at(APRIL_1, 9, 15)), (1440, at(date(2026, 4, 2))), (95, at(APRIL_1, 10, 35))):
        assert (await schedule(ctx, ADMIN, call.id, at(APRIL_1), duration_minutes=minutes)).ends_at == ends
    for minutes in (14, 0, -60, 1441):
        wrong = await refused(
            ctx, small.customer_id, schedule(ctx, ADMIN, call.id, at(APRIL_1), duration_minutes=minutes), ValidationFailed
        )
        assert (wrong.message, wrong.field) == (f"an activity lasts 15 to 1440 minutes, not {minutes}", "durationMinutes")
    naive = await refused(ctx, small.customer_id, schedule(ctx, ADMIN, call.id, datetime(2026, 4, 1, 9, 0)), ValidationFailed)
    assert (naive.message, naive.field) == ("the start must be given with its time zone", "startsAt")

    # Expert hours (Europe/Berlin): a three-hour activity lasts three hours unless told otherwise.
    hours = await make_contract(program="premium-availability", plan="premium-16", effective=date(2026, 1, 1),
                                client_manager_email=manager.email)
    planning = (await book(ctx, ADMIN, hours.id, "launch-planning", date(2026, 3, 20))).booking
    assert planning.units == 180
    berlin = datetime.fromisoformat("2026-03-20T09:00:00+01:00")
    done = await schedule(ctx, ADMIN, planning.id, berlin)
    assert (done.starts_at, done.ends_at) == (at(date(2026, 3, 20), 8), at(date(2026, 3, 20), 11))
    shorter = await schedule(ctx, ADMIN, planning.id, berlin, duration_minutes=90)
    assert shorter.ends_at == at(date(2026, 3, 20), 9, 30)
    assert shorter.units == 180  # the length never changes what was charged


async def test_rescheduling_raises_the_revision_and_tells_the_customer_again(ctx, clock, customer, make_contract, manager):
    contract = await make_contract(customer=customer, client_manager_email=manager.email)
    booking = (await book(ctx, customer_actor(customer.id), contract.id, note="bring the diagrams")).booking
    cm = identity.actor_for_user(manager)

    first = await schedule(ctx, cm, booking.id, at(APRIL_1))
    assert first.revision == 1
    clock.instant = NOW + timedelta(minutes=5)
    second = await schedule(ctx, cm, booking.id, at(date(2026, 4, 2), 14, 30), duration_minutes=90)
    assert (second.revision, second.starts_at, second.ends_at) == (2, at(date(2026, 4, 2), 14, 30), at(date(2026, 4, 2), 16))

    assert await audit_actions(ctx, booking.id) == Counter(
        {"booking.create": 1, "booking.schedule": 1, "booking.reschedule": 1}
    )
    async with ctx.db.read() as session:
        moved = await session.scalar(
            select(AuditEntry).where(AuditEntry.target_id == str(booking.id), AuditEntry.action == "booking.reschedule")
        )
    assert moved.detail == {"starts_at": "2026-04-02T14:30:00+00:00", "minutes": 90, "staff": manager.email}
    assert moved.actor_ref == f"user:{manager.id}"

    scheduled = await messages(ctx, customer.id, "booking_scheduled")
    who = ("customer", customer.name, customer.email)
    assert addressed(scheduled) == [
        (f"booking:{booking.id}:booking_scheduled:1", *who), (f"booking:{booking.id}:booking_scheduled:2", *who)
    ]
    assert [m.subject for m in scheduled] == [
        f"[{PROVIDER}] Scheduled: Code review on Wednesday 2026-04-01 09:00 (UTC)",
        f"[{PROVIDER}] Moved: Code review on Thursday 2026-04-02 14:30 (UTC)",
    ]
    assert scheduled[1].body == (
        f"Code review for contract {contract.reference} takes place on Thursday 2026-04-02 14:30 (UTC) for 90 minutes, "
        f"with Carla Client-Manager. It uses 2 activities of the period 2026-02-15 to 2026-05-14."
    )
    # Besides these, only the request the customer made reached the client manager.
    assert sorted(m.kind for m in await messages(ctx, customer.id)) == [
        "booking_requested", "booking_scheduled", "booking_scheduled"
    ]


async def test_a_partner_managed_customer_is_told_through_its_partner_and_participants_hear_too(
    ctx, customer, make_contract, manager
):
    contract = await make_contract(customer=customer, client_manager_email=manager.email)
    managing, taking_part, silent = [await make_partner(ctx) for _ in range(3)]
    await link(ctx, managing, customer, managed=True, can_book=True)
    await link(ctx, taking_part, customer, managed=False, can_book=True)
    await link(ctx, silent, customer, managed=False, can_book=True)
    booking = (
        await book(ctx, customer_actor(customer.id), contract.id, partner_ids=[managing.id, taking_part.id])
    ).booking

    await schedule(ctx, ADMIN, booking.id, at(APRIL_1))
    assert sorted(addressed(await messages(ctx, customer.id, "booking_scheduled"))) == sorted([
        (f"booking:{booking.id}:booking_scheduled:1", "partner", managing.name, managing.email),
        (f"booking:{booking.id}:booking_scheduled:1:partner:{taking_part.id}", "partner", taking_part.name, taking_part.email),
    ])
    # Cancelling a scheduled booking tells the same people, never the customer itself.
    await bookings.cancel_booking(ctx, customer_actor(customer.id), booking.id, "no longer needed")
    cancelled = await messages(ctx, customer.id, "booking_cancelled")
    assert sorted(addressed(cancelled)) == sorted([
        (f"booking:{booking.id}:booking_cancelled:2", "partner", managing.name, managing.email),
        (f"booking:{booking.id}:booking_cancelled:2:partner:{taking_part.id}", "partner", taking_part.name, taking_part.email),
    ])
    assert all(m.subject == f"[{PROVIDER}] Cancelled: Code review on Wednesday 2026-04-01 09:00 (UTC)" for m in cancelled)
    assert not [m for m in await messages(ctx, customer.id) if m.recipient_kind == "customer"]


async def test_booking_tells_the_client_manager_unless_they_booked_it(ctx, customer, make_contract, manager):
    contract = await make_contract(customer=customer, client_manager_email=manager.email)
    asked = (await book(ctx, customer_actor(customer.id), contract.id, note="Before the audit")).booking
    [requested] = await messages(ctx, customer.id, "booking_requested")
    assert addressed([requested]) == [(f"booking:{asked.id}:requested", "staff", manager.name, manager.email)]
    assert requested.subject == f"[{PROVIDER}] To schedule: Code review for {contract.reference}"
    assert requested.body == (
        f"A customer user requested Code review (2 activities) for 2026-04-01 on contract {contract.reference}. "
        "It is charged to the period 2026-02-15 to 2026-05-14: schedule it inside that period.\n\n"
        f"Note: Before the audit\n\nhttp://127.0.0.1:8000/contracts/{contract.id}"
    )
    own = (await book(ctx, identity.actor_for_user(manager), contract.id, "advisory-call")).booking
    by_admin = (await book(ctx, ADMIN, contract.id, "advisory-call")).booking
    assert [m.dedupe_key for m in await messages(ctx, customer.id, "booking_requested")] == sorted(
        [f"booking:{asked.id}:requested", f"booking:{by_admin.id}:requested"]
    )
    assert own.requested_by_ref == f"user:{manager.id}"

    unmanaged = await make_contract(customer=customer)  # no client manager: nobody to tell
    await book(ctx, customer_actor(customer.id), unmanaged.id, "advisory-call")
    assert len(await messages(ctx, customer.id, "booking_requested")) == 2

    async with ctx.db.write() as session:  # no service deactivates users yet
        (await session.get(User, manager.id)).active = False
    await book(ctx, customer_actor(customer.id), contract.id, "advisory-call")  # an inactive manager is not told
    assert len(await messages(ctx, customer.id, "booking_requested")) == 2


# ---- delivering and cancelling -------------------------------------------------------------------------


async def test_only_a_scheduled_booking_that_has_started_is_delivered(ctx, clock, customer, make_contract, manager):
    contract = await make_contract(customer=customer, client_manager_email=manager.email)
    booking = (await book(ctx, customer_actor(customer.id), contract.id)).booking

    early = await refused(ctx, customer.id, bookings.deliver_booking(ctx, ADMIN, booking.id), Conflict)
    assert (early.code, early.field, early.details["status"]) == (ErrorCode.WRONG_STATUS, "bookingId", "requested")
    assert early.message == f"booking {booking.id} is requested and cannot be delivered (only a scheduled booking is)"

    await schedule(ctx, ADMIN, booking.id, at(APRIL_1, 9))
    clock.instant = at(APRIL_1, 8, 59)
    not_yet = await refused(ctx, customer.id, bookings.deliver_booking(ctx, ADMIN, booking.id), ValidationFailed)
    assert (not_yet.field, not_yet.message) == (
        "bookingId",
        "the activity is scheduled to start at 2026-04-01T09:00:00+00:00; it is delivered once it has taken place",
    )
    clock.instant = at(APRIL_1, 11, 15)
    delivered = await bookings.deliver_booking(ctx, ADMIN, booking.id, "  Reviewed the payment module  ")
    assert (delivered.status, delivered.delivered_at, delivered.delivery_note, delivered.revision) == (
        BookingStatus.DELIVERED, at(APRIL_1, 11, 15), "Reviewed the payment module", 2
    )
    row = await stored(ctx, booking.id)
    assert (row.status, row.delivered_at) == (BookingStatus.DELIVERED, at(APRIL_1, 11, 15))
    assert (await audit_actions(ctx, booking.id))["booking.deliver"] == 1

    # Delivered: its units stay consumed; it cannot be cancelled or delivered again.
    for call in (bookings.cancel_booking(ctx, ADMIN, booking.id), bookings.deliver_booking(ctx, ADMIN, booking.id)):
        wrong = await refused(ctx, customer.id, call, Conflict)
        assert (wrong.code, wrong.details["status"]) == (ErrorCode.WRONG_STATUS, "delivered")
    cancel_refusal = await refused(ctx, customer.id, bookings.cancel_booking(ctx, customer_actor(customer.id), booking.id), Conflict)
    assert cancel_refusal.message == f"booking {booking.id} is delivered and cannot be cancelled"
    assert await booking_entries(ctx, booking.id) == [(LedgerKind.CONSUME, 2, Q1)]
    [q1, *_] = await contracts.bucket_periods(ctx, ADMIN, contract.id, "activities")
    assert (q1.consumed, q1.remaining) == (2, 3)


async def test_a_customer_cannot_schedule_or_deliver(ctx, customer, make_contract, manager):
    contract = await make_contract(customer=customer, client_manager_email=manager.email)
    booking = (await book(ctx, customer_actor(customer.id), contract.id)).booking
    me = customer_actor(customer.id)
    denied = await refused(ctx, customer.id, schedule(ctx, me, booking.id, at(APRIL_1)), PermissionDenied)
    assert denied.message == "A customer user may not schedule and deliver booked activities"
    await refused(ctx, customer.id, bookings.deliver_booking(ctx, me, booking.id), PermissionDenied)


async def test_cancelling_after_the_period_ended_gives_the_units_back_to_expire_with_it(
    ctx, clock, customer, make_contract
):
    contract = await make_contract(customer=customer)
    late = (await book(ctx, ADMIN, contract.id, "upgrade-planning", Q1_END)).booking  # 3 of the first quarter
    await book(ctx, ADMIN, contract.id, "advisory-call", date(2026, 4, 1))
    await book(ctx, ADMIN, contract.id, "code-review", Q2)

    clock.instant = datetime(2026, 5, 20, 10, 0, tzinfo=UTC)
    outcome = await bookings.cancel_booking(ctx, customer_actor(customer.id), late.id, "the upgrade slipped")
    assert (outcome.booking.status, outcome.booking.cancel_reason) == (BookingStatus.CANCELLED, "the upgrade slipped")
    period = outcome.period
    assert (period.period.start, period.period.end, period.consumed, period.remaining) == (Q1, Q1_END, 1, 4)
    assert (period.ended, period.expired, period.expiring_soon) == (True, 4, False)

    q1, q2, *_ = await contracts.bucket_periods(ctx, ADMIN, contract.id, "activities")
    assert (q1.consumed, q1.remaining, q1.ended, q1.expired) == (1, 4, True, 4)
    assert (q2.period.start, q2.consumed, q2.remaining, q2.expired) == (Q2, 2, 3, 0)
    assert await booking_entries(ctx, late.id) == [(LedgerKind.CONSUME, 3, Q1), (LedgerKind.REVERSE, -3, Q1)]
    # The ended quarter takes no new booking: the units came back only to expire.
    with pytest.raises(DomainError) as past:
        await book(ctx, ADMIN, contract.id, "advisory-call", Q1_END)
    assert past.value.code == ErrorCode.DATE_IN_PAST


async def test_a_bookings_consumption_is_not_reversed_through_the_ledger(ctx, customer, make_contract):
    contract = await make_contract(customer=customer)
    booking = (await book(ctx, customer_actor(customer.id), contract.id)).booking
    async with ctx.db.read() as session:
        entry_id = await session.scalar(select(LedgerEntry.id).where(LedgerEntry.booking_id == booking.id))

    refusal = await refused(ctx, customer.id, ledger.reverse_entry(ctx, ADMIN, entry_id, reason="undo"), Conflict)
    assert (refusal.code, refusal.field) == (ErrorCode.NOT_REVERSIBLE, "entryId")
    assert refusal.message == (
        f"ledger entry {entry_id} is what booking {booking.id} consumed: cancel the booking instead"
    )
    assert (await stored(ctx, booking.id)).status == BookingStatus.REQUESTED
    # The reversal written when the booking is cancelled is no more reversible than any other.
    await bookings.cancel_booking(ctx, ADMIN, booking.id)
    async with ctx.db.read() as session:
        reversal_id = await session.scalar(
            select(LedgerEntry.id).where(LedgerEntry.booking_id == booking.id, LedgerEntry.kind == LedgerKind.REVERSE)
        )
    again = await refused(ctx, customer.id, ledger.reverse_entry(ctx, ADMIN, reversal_id, reason="undo"), Conflict)
    assert again.code == ErrorCode.NOT_REVERSIBLE


# ---- an order's catalog ------------------------------------------------------------------------------


ASSURE_CATALOG = (
    "advisory-call, code-review, configuration-review, upgrade-planning, performance-review, security-review, "
    "architecture-review, go-live-readiness, roadmap-workshop"
)


async def test_an_orders_catalog_is_checked_when_the_contract_is_created(ctx, customer, make_contract):
    cases = (
        (["advisory-call", "no-such-activity"],
         f"activity 'no-such-activity' is not in the catalog of plan 'small' (it has: {ASSURE_CATALOG})"),
        (["code-review", "advisory-call", "code-review"], "activity 'code-review' is listed twice"),
        ([], "an order's catalog lists at least one activity; leave it out to offer the plan's whole catalog"),
        (["project-review"],  # an expert service of another program
         f"activity 'project-review' is not in the catalog of plan 'small' (it has: {ASSURE_CATALOG})"),
    )
    for listed, message in cases:
        reference = unique("ORD")
        with pytest.raises(ValidationFailed) as refusal:
            await make_contract(customer=customer, catalog=listed, reference=reference)
        assert (refusal.value.message, refusal.value.field) == (message, "catalog")
        async with ctx.db.read() as session:
            assert await session.scalar(select(Contract.id).where(Contract.reference == reference)) is None


async def test_an_orders_catalog_narrows_what_may_be_booked(ctx, customer, make_contract):
    contract = await make_contract(customer=customer, catalog=["code-review", "advisory-call"])
    assert contract.catalog == ["code-review", "advisory-call"]
    outside = await refused(ctx, customer.id, book(ctx, ADMIN, contract.id, "roadmap-workshop"), NotInCatalog)
    assert (outside.code, outside.field, outside.available) == (
        ErrorCode.ACTIVITY_NOT_IN_CATALOG, "activity", ["code-review", "advisory-call"]
    )
    assert outside.message == (
        f"activity 'roadmap-workshop' is not in the catalog of contract {contract.reference} (its order's list); "
        "it may book: code-review, advisory-call"
    )
    assert (await book(ctx, ADMIN, contract.id, "code-review")).booking.units == 2
    whole = await make_contract(customer=customer)  # no list: the plan's whole catalog
    assert (await book(ctx, ADMIN, whole.id, "roadmap-workshop")).booking.units == 5
    nothing = await refused(ctx, customer.id, book(ctx, ADMIN, whole.id, "nope"), NotInCatalog)
    assert nothing.message.startswith(f"activity 'nope' is not in the catalog of contract {whole.reference} (plan 'Assure Small')")
    assert nothing.available == ASSURE_CATALOG.split(", ")


# ---- expiring soon -----------------------------------------------------------------------------------------


def with_settings(ctx: AppContext, **values: Any) -> AppContext:
    return AppContext(db=ctx.db, settings=Settings(database_url=ctx.settings.database_url, **values), clock=ctx.clock)


async def periods(ctx: AppContext, contract_id: uuid.UUID, bucket: str = "activities") -> list[contracts.EntitlementPeriod]:
    return await contracts.bucket_periods(ctx, ADMIN, contract_id, bucket)


async def test_expiring_soon_is_the_last_warning_days_of_a_period_with_units_left(ctx, clock, make_contract):
    contract = await make_contract()  # Q1 2026-02-15 .. 2026-05-14; the default warning is 30 days
    full = await make_contract()
    await book(ctx, ADMIN, full.id, "roadmap-workshop", date(2026, 5, 1))  # the whole first quarter

    def flags(found: list[contracts.EntitlementPeriod]) -> list[tuple[int, bool]]:
        return [(p.expires_in_days, p.expiring_soon) for p in found[:2]]

    assert flags(await periods(ctx, contract.id)) == [(65, False), (157, False)]
    clock.instant = at(date(2026, 4, 13), 23, 59)
    assert flags(await periods(ctx, contract.id)) == [(31, False), (123, False)]
    clock.instant = at(date(2026, 4, 14), 0, 0)
    assert flags(await periods(ctx, contract.id)) == [(30, True), (122, False)]
    assert [p.warning_days for p in await periods(ctx, contract.id)][:1] == [30]
    clock.instant = at(Q1_END, 23, 59)  # the last day, units left
    q1, q2, *_ = await periods(ctx, contract.id)
    assert (q1.expires_in_days, q1.expiring_soon, q1.remaining, q1.ended) == (0, True, 5, False)
    assert q2.expiring_soon is False  # a future period never is, however long the warning
    [f1, f2, *_] = await periods(with_settings(ctx, expiry_warning_days=366), contract.id)
    assert (f1.expiring_soon, f2.expiring_soon, f2.expires_in_days) == (True, False, 92)
    [none_left, *_] = await periods(ctx, full.id)
    assert (none_left.remaining, none_left.expiring_soon) == (0, False)
    clock.instant = at(Q2, 0, 0)  # the day after
    q1, q2, *_ = await periods(ctx, contract.id)
    assert (q1.ended, q1.expired, q1.expiring_soon) == (True, 5, False)
    assert (q2.expires_in_days, q2.expiring_soon) == (91, False)
    # What the reminders read: the current periods only.
    [current] = await contracts.entitlements(ctx, ADMIN, contract.id)
    assert (current.period.start, current.expiring_soon) == (Q2, False)


async def test_a_plans_expiry_warning_days_overrides_the_setting(ctx, clock, make_contract, make_customer):
    code = unique("warn")
    text = small_program(code).replace('name = "Basic"\n', 'name = "Basic"\nexpiry_warning_days = 7\n', 1)
    await programs.load_programs(ctx, ADMIN, [parse_program(text)])
    customer = await make_customer()
    own = await contracts.create_contract(
        ctx, ADMIN,
        contracts.NewContract(unique("WARN"), customer.id, code, "basic", Q1, date(2027, 2, 14), Decimal("1.00"), "EUR"),
    )
    shipped = await make_contract(customer=customer)
    wide = with_settings(ctx, expiry_warning_days=45)

    clock.instant = at(date(2026, 3, 30))  # 45 days before the first quarter ends
    [p, *_] = await periods(wide, own.id, "support")
    [s, *_] = await periods(wide, shipped.id)
    assert (p.warning_days, p.expires_in_days, p.expiring_soon) == (7, 45, False)
    assert (s.warning_days, s.expires_in_days, s.expiring_soon) == (45, 45, True)
    assert (await periods(ctx, shipped.id))[0].expiring_soon is False  # the default 30 days
    clock.instant = at(date(2026, 3, 29))
    assert (await periods(wide, shipped.id))[0].expiring_soon is False
    clock.instant = at(date(2026, 5, 6))
    assert [(p.expires_in_days, p.expiring_soon) for p in (await periods(wide, own.id, "support"))[:1]] == [(8, False)]
    clock.instant = at(date(2026, 5, 7))
    assert [(p.expires_in_days, p.expiring_soon) for p in (await periods(wide, own.id, "support"))[:1]] == [(7, True)]


# ---- a random walk of bookings on one contract ---------------------------------------------------------


ALLOWANCE = 5
SIZES = {"advisory-call": 1, "code-review": 2, "upgrade-planning": 3, "architecture-review": 4, "roadmap-workshop": 5}
DAYS = [date(2026, 3, 10), date(2026, 4, 1), Q1_END, Q2, date(2026, 7, 1)]
OPEN = (BookingStatus.REQUESTED, BookingStatus.SCHEDULED)


def charged_period(day: date) -> date:
    return Q1 if day <= Q1_END else Q2


class BookingMachine(RuleBasedStateMachine):
    """Random bookings, cancellations, schedules and deliveries on one Assure Small contract over its
    first two quarters; after every step each period's balance equals the units of its live bookings and
    its ledger sum, never above the allowance, and a refusal changes nothing."""

    database_url: str = ""
    manager_email: str = ""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.db = Database(self.database_url)
        self.ctx = AppContext(db=self.db, settings=Settings(database_url=self.database_url), clock=FixedClock(NOW))
        # booking id -> [units, period start, requested day, status, starts_at]
        self.model: dict[uuid.UUID, list[Any]] = {}
        self.contract_id = self.run(self._create_contract())
        self.last_state = self._state()

    def run(self, coroutine):  # type: ignore[no-untyped-def]
        return self.loop.run_until_complete(coroutine)

    async def _create_contract(self) -> uuid.UUID:
        if not BookingMachine.manager_email:
            BookingMachine.manager_email = (await make_staff(self.ctx, "Machine Manager")).email
        code = unique("booking-machine")
        customer = await parties.create_customer(self.ctx, ADMIN, parties.NewCustomer(code=code, name=code))
        contract = await contracts.create_contract(
            self.ctx, ADMIN,
            contracts.NewContract(unique("BM"), customer.id, "advisory-assure", "small", Q1, date(2027, 2, 14),
                                  Decimal("100.00"), "EUR", client_manager_email=BookingMachine.manager_email),
        )
        return contract.id

    def teardown(self) -> None:
        try:
            self.run(self.db.dispose())
        finally:
            self.loop.close()

    async def _read_state(self):  # type: ignore[no-untyped-def]
        async with self.db.read() as session:
            balances = (
                await session.execute(
                    select(EntitlementBalance.period_start, EntitlementBalance.consumed, EntitlementBalance.allowance)
                    .where(EntitlementBalance.contract_id == self.contract_id)
                    .order_by(EntitlementBalance.period_start)
                )
            ).all()
            entries = (
                await session.execute(
                    select(LedgerEntry.id, LedgerEntry.period_start, LedgerEntry.quantity, LedgerEntry.booking_id)
                    .where(LedgerEntry.contract_id == self.contract_id)
                    .order_by(LedgerEntry.id)
                )
            ).all()
            rows = (
                await session.execute(
                    select(Booking.id, Booking.period_start, Booking.units, Booking.status, Booking.revision)
                    .where(Booking.contract_id == self.contract_id)
                    .order_by(Booking.id)
                )
            ).all()
        return [tuple(b) for b in balances], [tuple(e) for e in entries], [tuple(r) for r in rows]

    def _state(self):  # type: ignore[no-untyped-def]
        return self.run(self._read_state())

    def _attempt(self, call, expected: ErrorCode | None):  # type: ignore[no-untyped-def]
        try:
            outcome = self.run(call)
        except DomainError as exc:
            assert expected is not None, f"unexpected refusal {exc.code}: {exc.message}"
            assert exc.code == expected, (exc.code, exc.message)
            assert self._state() == self.last_state
            return None
        assert expected is None, f"expected {expected}, but it went through"
        return outcome

    def _used(self, start: date) -> int:
        return sum(units for units, period, _, status, _ in self.model.values() if period == start and status != BookingStatus.CANCELLED)

    @rule(activity=st.sampled_from(sorted(SIZES)), day=st.sampled_from(DAYS))
    def book(self, activity: str, day: date) -> None:
        units, start = SIZES[activity], charged_period(day)
        expected = ErrorCode.INSUFFICIENT_BALANCE if self._used(start) + units > ALLOWANCE else None
        outcome = self._attempt(book(self.ctx, ADMIN, self.contract_id, activity, day), expected)
        if outcome is not None:
            assert (outcome.booking.units, outcome.booking.period_start) == (units, start)
            assert outcome.period.consumed == self._used(start) + units
            self.model[outcome.booking.id] = [units, start, day, BookingStatus.REQUESTED, None]

    def _with(self, *statuses: BookingStatus) -> list[uuid.UUID]:
        return [ident for ident, state in self.model.items() if state[3] in statuses]  # in booking order

    @precondition(lambda self: self._with(*OPEN))
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        ident = data.draw(st.sampled_from(self._with(*OPEN)))
        state = self.model[ident]
        outcome = self._attempt(bookings.cancel_booking(self.ctx, ADMIN, ident, "random"), None)
        state[3] = BookingStatus.CANCELLED
        assert outcome.period.consumed == self._used(state[1])

    @precondition(lambda self: self._with(*OPEN))
    @rule(data=st.data(), now=st.booleans(), then_deliver=st.booleans())
    def schedule(self, data: st.DataObject, now: bool, then_deliver: bool) -> None:
        ident = data.draw(st.sampled_from(self._with(*OPEN)))
        state = self.model[ident]
        # Now, where today is inside the period charged, so it can be delivered; else on the day asked for.
        starts_at = NOW if now and state[1] == Q1 else at(state[2], 13)
        self._attempt(schedule(self.ctx, ADMIN, ident, starts_at), None)
        state[3], state[4] = BookingStatus.SCHEDULED, starts_at
        if then_deliver:
            self.balances_equal_bookings_and_ledger()
            self.deliver_now(ident)

    def deliver_now(self, ident: uuid.UUID) -> None:
        state = self.model[ident]
        expected = ErrorCode.INVALID if state[4] > NOW else None  # not before it has started
        if self._attempt(bookings.deliver_booking(self.ctx, ADMIN, ident), expected) is not None:
            state[3] = BookingStatus.DELIVERED

    @precondition(lambda self: self._with(BookingStatus.SCHEDULED))
    @rule(data=st.data())
    def deliver(self, data: st.DataObject) -> None:
        self.deliver_now(data.draw(st.sampled_from(self._with(BookingStatus.SCHEDULED))))

    @precondition(lambda self: self._with(BookingStatus.REQUESTED, BookingStatus.DELIVERED, BookingStatus.CANCELLED))
    @rule(data=st.data(), action=st.sampled_from(["cancel", "schedule", "deliver"]))
    def refuse_wrong_status(self, data: st.DataObject, action: str) -> None:
        """Delivering an unscheduled booking, or changing a delivered or cancelled one, is refused."""
        statuses = [BookingStatus.DELIVERED, BookingStatus.CANCELLED]
        if action == "deliver":
            statuses.append(BookingStatus.REQUESTED)
        candidates = self._with(*statuses)
        if not candidates:
            return
        ident = data.draw(st.sampled_from(candidates))
        call = {
            "cancel": lambda: bookings.cancel_booking(self.ctx, ADMIN, ident),
            "schedule": lambda: schedule(self.ctx, ADMIN, ident, at(self.model[ident][2], 13)),
            "deliver": lambda: bookings.deliver_booking(self.ctx, ADMIN, ident),
        }[action]()
        self._attempt(call, ErrorCode.WRONG_STATUS)

    @invariant()
    def balances_equal_bookings_and_ledger(self) -> None:
        self.last_state = balances, entries, rows = self._state()
        consumed = {start: (used, allowance) for start, used, allowance in balances}
        ledger_sums: dict[date, int] = {}
        for _, start, quantity, booking_id in entries:
            assert booking_id in self.model
            ledger_sums[start] = ledger_sums.get(start, 0) + quantity
        live: dict[date, int] = {}
        for ident, start, units, status, _ in rows:
            assert status == self.model[ident][3]
            if status != BookingStatus.CANCELLED:
                live[start] = live.get(start, 0) + units
        assert set(consumed) <= {Q1, Q2}
        for start in (Q1, Q2):
            used, allowance = consumed.get(start, (0, ALLOWANCE))
            assert used == live.get(start, 0) == ledger_sums.get(start, 0) == self._used(start)
            assert 0 <= used <= allowance == ALLOWANCE
        assert len(rows) == len(self.model)


def test_random_bookings_keep_balances_equal_to_bookings_and_ledger(database_url, shipped_programs):
    BookingMachine.database_url = database_url
    BookingMachine.manager_email = ""
    run_state_machine_as_test(
        BookingMachine,
        settings=hypothesis_settings(
            max_examples=20,
            stateful_step_count=12,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )

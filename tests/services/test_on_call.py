"""On-call reservations (the tiered program's Premium add-on) at service level: whole consultant-days at a
rate inside DKK 3,500-5,000, the window each day falls in, what is refused with nothing written, who may
reserve and cancel (the booking rules), cancelling before the day, the client manager's message, racing
reservations of one day, and monthly totals in one statement for any number of contracts."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import event, func, select

from api.models import AuditEntry, OnCallReservation, OnCallStatus, OutboxMessage, StaffRole, UserKind
from api.services import identity, on_call, parties
from api.services.context import Actor, AppContext
from api.services.errors import (
    AddOnNotOffered,
    Conflict,
    DomainError,
    ErrorCode,
    NotFound,
    OnCallDateRefused,
    PermissionDenied,
    RateOutOfRange,
    ValidationFailed,
)
from api.services.on_call import NewReservation, OnCallTotal
from tests.conftest import ADMIN, unique

# NOW is Tuesday 2026-03-10 12:00 UTC (13:00 in Copenhagen).
TODAY = date(2026, 3, 10)
SATURDAY = date(2026, 3, 14)
SUNDAY = date(2026, 3, 15)
TUESDAY = date(2026, 3, 17)
MARCH = date(2026, 3, 1)
RATE = Decimal("4200.00")


async def make_manager(ctx: AppContext):  # type: ignore[no-untyped-def]
    email = f"{unique('cm')}@on-call.example"
    user = await identity.create_user(
        ctx, ADMIN, identity.NewUser(email, "Carla Manager", "a long staff password", UserKind.STAFF,
                                     staff_role=StaffRole.CLIENT_MANAGER)
    )
    return user, Actor(kind="staff", ref=f"user:{user.id}", name=user.name, roles=frozenset({"client_manager"}),
                       user_id=user.id)


@pytest.fixture
async def manager(ctx):  # type: ignore[no-untyped-def]
    return await make_manager(ctx)


@pytest.fixture
async def premium(make_contract, manager):  # type: ignore[no-untyped-def]
    return await make_contract(
        program="tiered-support", plan="premium", effective=date(2026, 1, 1), end=date(2026, 12, 31),
        monthly_fee=Decimal("18500.00"), currency="DKK", client_manager_email=manager[0].email,
    )


def customer_of(contract) -> Actor:  # type: ignore[no-untyped-def]
    return Actor(kind="customer", ref=f"user:{uuid.uuid4()}", name="Customer user", customer_id=contract.customer_id)


def reservation(contract_id: uuid.UUID, *days: date, consultants: int = 2, rate: Decimal = RATE, **fields) -> NewReservation:  # type: ignore[no-untyped-def]
    return NewReservation(contract_id, list(days), consultants, rate, **fields)


async def traces(ctx: AppContext) -> tuple:  # type: ignore[type-arg]
    async with ctx.db.read() as session:
        rows = (await session.execute(
            select(OnCallReservation.id, OnCallReservation.status).order_by(OnCallReservation.id)
        )).all()
        audits = await session.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.action.like("on_call.%"))
        )
        messages = await session.scalar(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.kind.like("on_call_%"))
        )
    return [tuple(r) for r in rows], audits, messages


async def refused(ctx: AppContext, call, error: type[DomainError]) -> DomainError:  # type: ignore[no-untyped-def]
    before = await traces(ctx)
    with pytest.raises(error) as raised:
        await call
    assert await traces(ctx) == before
    return raised.value


async def messages(ctx: AppContext, customer_id: uuid.UUID) -> list[OutboxMessage]:
    async with ctx.db.read() as session:
        return list(await session.scalars(
            select(OutboxMessage).where(OutboxMessage.customer_id == customer_id, OutboxMessage.kind.like("on_call_%"))
            .order_by(OutboxMessage.created_at, OutboxMessage.kind)
        ))


async def totals(ctx: AppContext, contracts, month: date = MARCH) -> dict[uuid.UUID, OnCallTotal]:  # type: ignore[no-untyped-def]
    async with ctx.db.read() as session:
        return await on_call.on_call_totals(session, contracts, month)


async def test_the_customer_reserves_days_and_the_client_manager_hears_of_it(ctx, premium, manager):
    made = await on_call.reserve_on_call(
        ctx, customer_of(premium), reservation(premium.id, TUESDAY, SATURDAY, note="Campaign launch")
    )
    assert [(r.on_date, r.window, r.consultants, r.day_rate, r.currency, r.status, r.add_on_code) for r in made] == [
        (SATURDAY, "weekends", 2, RATE, "DKK", OnCallStatus.RESERVED, "on-call-readiness"),
        (TUESDAY, "evenings", 2, RATE, "DKK", OnCallStatus.RESERVED, "on-call-readiness"),
    ]
    assert await totals(ctx, [premium]) == {premium.id: OnCallTotal(4, Decimal("16800.00"), "DKK")}
    [message] = await messages(ctx, premium.customer_id)
    assert (message.kind, message.dedupe_key, message.recipient_kind, message.recipient_email) == (
        "on_call_reserved", f"on_call:{made[0].id}:reserved", "staff", manager[0].email
    )
    assert "2026-03-14" in message.subject and premium.reference in message.subject
    assert "Saturday 2026-03-14, weekends: 2 consultant(s) at DKK4,200.00 = DKK8,400.00" in message.body
    assert "Total: DKK16,800.00." in message.body and "within 60 minutes" in message.body
    async with ctx.db.read() as session:
        actions = list(await session.scalars(
            select(AuditEntry.action).where(AuditEntry.target_id.in_([str(r.id) for r in made]))
        ))
    assert actions == ["on_call.reserve", "on_call.reserve"]
    listed = await on_call.list_on_call(ctx, customer_of(premium), premium.id)
    assert [r.on_date for r in listed] == [SATURDAY, TUESDAY]


async def test_the_range_is_inclusive_and_a_rate_outside_it_is_refused_naming_it(ctx, premium):
    for rate in (Decimal("3499.99"), Decimal("5000.01"), Decimal(0)):
        error = await refused(ctx, on_call.reserve_on_call(ctx, ADMIN, reservation(premium.id, SATURDAY, rate=rate)),
                              RateOutOfRange)
        assert error.field == "dayRate" and error.code == ErrorCode.RATE_OUT_OF_RANGE
        assert "DKK 3,500.00–5,000.00" in error.message, error.message
        assert (error.minimum, error.maximum, error.currency) == (Decimal(3500), Decimal(5000), "DKK")
    error = await refused(ctx, on_call.reserve_on_call(ctx, ADMIN, reservation(premium.id, SATURDAY, rate=Decimal("4000.001"))),
                          ValidationFailed)
    assert error.field == "dayRate"
    low = await on_call.reserve_on_call(ctx, ADMIN, reservation(premium.id, SATURDAY, rate=Decimal("3500"), consultants=1))
    high = await on_call.reserve_on_call(ctx, ADMIN, reservation(premium.id, SUNDAY, rate=Decimal("5000.00"), consultants=3))
    assert [r.day_rate for r in low + high] == [Decimal("3500.00"), Decimal("5000.00")]
    assert await totals(ctx, [premium]) == {premium.id: OnCallTotal(4, Decimal("18500.00"), "DKK")}


async def test_refusals_name_the_field_and_write_nothing(ctx, premium, make_contract):
    reserve = lambda new, actor=ADMIN: on_call.reserve_on_call(ctx, actor, new)  # noqa: E731
    extended = await make_contract(program="tiered-support", plan="extended", currency="DKK")
    error = await refused(ctx, reserve(reservation(extended.id, SATURDAY)), AddOnNotOffered)
    assert (error.field, error.code, error.available) == ("contractId", ErrorCode.ADD_ON_NOT_OFFERED, [])
    assert "offers no on-call readiness" in error.message
    error = await refused(ctx, reserve(reservation(premium.id, SATURDAY, add_on="weekend-cover")), AddOnNotOffered)
    assert (error.field, error.available) == ("addOn", ["on-call-readiness"])

    error = await refused(ctx, reserve(reservation(premium.id, TODAY - timedelta(days=1))), OnCallDateRefused)
    assert (error.code, error.field, error.earliest, error.latest) == (
        ErrorCode.DATE_IN_PAST, "dates", TODAY, date(2026, 12, 31)
    )
    error = await refused(ctx, reserve(reservation(premium.id, date(2027, 1, 2))), OnCallDateRefused)
    assert error.code == ErrorCode.AFTER_CONTRACT_END
    later = await make_contract(program="tiered-support", plan="premium", effective=date(2026, 4, 1), currency="DKK")
    error = await refused(ctx, reserve(reservation(later.id, date(2026, 3, 28))), OnCallDateRefused)
    assert (error.code, error.earliest) == (ErrorCode.BEFORE_CONTRACT_START, date(2026, 4, 1))

    # All or nothing: one bad day in the list refuses every day.
    error = await refused(ctx, reserve(reservation(premium.id, SATURDAY, TODAY - timedelta(days=3))), OnCallDateRefused)
    for new, field in [
        (reservation(premium.id), "dates"),
        (reservation(premium.id, SATURDAY, SATURDAY), "dates"),
        (reservation(premium.id, *[TODAY + timedelta(days=n) for n in range(63)]), "dates"),
        (reservation(premium.id, SATURDAY, consultants=0), "consultants"),
        (reservation(premium.id, SATURDAY, consultants=21), "consultants"),
        (reservation(premium.id, TUESDAY, window="weekends"), "window"),  # a Tuesday is no weekend
        (reservation(premium.id, SATURDAY, window="nights"), "window"),
        (reservation(premium.id, SATURDAY, note="x" * 2001), "note"),
    ]:
        error = await refused(ctx, reserve(new), ValidationFailed)
        assert error.field == field, (new, error.message)

    await reserve(reservation(premium.id, SATURDAY))
    error = await refused(ctx, reserve(reservation(premium.id, SUNDAY, SATURDAY, consultants=1)), Conflict)
    assert error.field == "dates" and "2026-03-14" in error.message
    assert await totals(ctx, [premium]) == {premium.id: OnCallTotal(2, Decimal("8400.00"), "DKK")}


async def test_today_may_be_reserved_and_the_window_may_be_chosen(ctx, premium):
    made = await on_call.reserve_on_call(ctx, ADMIN, reservation(premium.id, TODAY, SATURDAY, window="evenings"))
    assert [(r.on_date, r.window) for r in made] == [(TODAY, "evenings"), (SATURDAY, "evenings")]


async def test_who_may_reserve_and_cancel(ctx, premium, make_contract, make_customer):
    async def partner_for(managed: bool, can_book: bool) -> Actor:
        code = unique("partner")
        partner = await parties.create_partner(
            ctx, ADMIN, parties.NewPartner(code=code, name=f"Partner {code}", email=f"{code}@partners.example")
        )
        await parties.link_partner(ctx, ADMIN, partner_id=partner.id, customer_id=premium.customer_id, managed=managed,
                                   production_access=False, can_book_activities=can_book)
        return Actor(kind="partner", ref=f"user:{uuid.uuid4()}", name=f"User of {partner.name}", partner_id=partner.id)

    _, other_manager = await make_manager(ctx)
    engineer = Actor(kind="staff", ref="user:s", name="Support engineer", roles=frozenset({"support_engineer"}))
    read_only = Actor(kind="customer", ref="token:r", name="Read-only token", customer_id=premium.customer_id, read_only=True)
    stranger = Actor(kind="customer", ref="user:x", name="Another customer", customer_id=(await make_customer()).id)
    for actor, error in [
        (engineer, PermissionDenied), (read_only, PermissionDenied), (stranger, NotFound), (other_manager, NotFound),
        (await partner_for(managed=True, can_book=False), PermissionDenied),
        (await partner_for(managed=False, can_book=True), PermissionDenied),
    ]:
        await refused(ctx, on_call.reserve_on_call(ctx, actor, reservation(premium.id, SATURDAY)), error)

    manager_actor = Actor(kind="staff", ref="user:m", name="Manager", roles=frozenset({"client_manager"}),
                          user_id=premium.client_manager_id)
    booking_partner = await partner_for(managed=True, can_book=True)
    integrator = Actor(kind="staff", ref="token:i", name="Integrator", roles=frozenset({"integrator"}))
    days = iter([SATURDAY, SUNDAY, TUESDAY, date(2026, 3, 18)])
    for actor in (customer_of(premium), booking_partner, manager_actor, integrator):
        [made] = await on_call.reserve_on_call(ctx, actor, reservation(premium.id, next(days)))
        assert made.created_by_ref == actor.ref and made.via_partner_id == actor.partner_id
    # The client manager reserving needs no message to themself; the others' three reservations made three.
    assert len(await messages(ctx, premium.customer_id)) == 3

    listed = await on_call.list_on_call(ctx, ADMIN, premium.id)
    await refused(ctx, on_call.cancel_on_call(ctx, stranger, listed[0].id), NotFound)
    await refused(ctx, on_call.cancel_on_call(ctx, engineer, listed[0].id), PermissionDenied)
    await refused(ctx, on_call.cancel_on_call(ctx, await partner_for(managed=True, can_book=False), listed[0].id), PermissionDenied)
    cancelled = await on_call.cancel_on_call(ctx, booking_partner, listed[0].id)
    assert cancelled.status == OnCallStatus.CANCELLED and cancelled.cancelled_by_ref == booking_partner.ref


async def test_cancelling_before_the_day_gives_it_back_and_on_the_day_it_is_charged(ctx, clock, premium, manager):
    saturday, tuesday = await on_call.reserve_on_call(ctx, ADMIN, reservation(premium.id, TUESDAY, SATURDAY))
    cancelled = await on_call.cancel_on_call(ctx, customer_of(premium), saturday.id)
    assert (cancelled.status, cancelled.cancelled_at) == (OnCallStatus.CANCELLED, clock.instant)
    assert await totals(ctx, [premium]) == {premium.id: OnCallTotal(2, Decimal("8400.00"), "DKK")}
    error = await refused(ctx, on_call.cancel_on_call(ctx, ADMIN, saturday.id), Conflict)
    assert (error.code, error.field) == (ErrorCode.WRONG_STATUS, "id")
    # The day is free again.
    clock.instant += timedelta(minutes=5)
    [again] = await on_call.reserve_on_call(ctx, ADMIN, reservation(premium.id, SATURDAY, consultants=1))
    assert [r.status for r in await on_call.list_on_call(ctx, ADMIN, premium.id)] == [
        OnCallStatus.CANCELLED, OnCallStatus.RESERVED, OnCallStatus.RESERVED
    ]
    assert [r.id for r in await on_call.list_on_call(ctx, ADMIN, premium.id, include_cancelled=False)] == [again.id, tuesday.id]
    kinds = [(m.kind, m.recipient_email) for m in await messages(ctx, premium.customer_id)]
    assert kinds.count(("on_call_cancelled", manager[0].email)) == 1

    # 00:30 on the Tuesday in Copenhagen (23:30 UTC on Monday): the day has begun.
    clock.instant = datetime(2026, 3, 16, 23, 30, tzinfo=UTC)
    error = await refused(ctx, on_call.cancel_on_call(ctx, ADMIN, tuesday.id), ValidationFailed)
    assert (error.code, error.field) == (ErrorCode.TOO_LATE_TO_CANCEL, "id")
    assert "has begun" in error.message
    assert await totals(ctx, [premium]) == {premium.id: OnCallTotal(3, Decimal("12600.00"), "DKK")}


async def test_two_requests_for_the_same_day_reserve_it_once(ctx, premium):
    results = await asyncio.gather(
        *(on_call.reserve_on_call(ctx, ADMIN, reservation(premium.id, SATURDAY)) for _ in range(2)),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["Conflict", "list"]
    assert len(await on_call.list_on_call(ctx, ADMIN, premium.id)) == 1


async def test_monthly_totals_take_one_statement_for_3_or_30_contracts(ctx, make_contract, monkeypatch):
    made = []
    for n in range(30):
        contract = await make_contract(program="tiered-support", plan="premium", effective=date(2026, 1, 1),
                                       currency="DKK" if n % 4 else "EUR")
        made.append(contract)
        if n % 3 == 0:
            await on_call.reserve_on_call(
                ctx, ADMIN, reservation(contract.id, SATURDAY, date(2026, 4, 4), consultants=1 + n % 2,
                                        rate=Decimal(3500 + n * 10))
            )
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        statements.append(statement)

    engine = ctx.db.engine.sync_engine
    counts = []
    async with ctx.db.read() as session:
        await session.execute(select(1))
        event.listen(engine, "before_cursor_execute", count)
        try:
            for batch in (made[:3], made):
                statements.clear()
                found = await on_call.on_call_totals(session, batch, MARCH)
                counts.append(len(statements))
        finally:
            event.remove(engine, "before_cursor_execute", count)
    assert counts == [1, 1]
    for n, contract in enumerate(made):
        if n % 3 == 0:
            consultants = 1 + n % 2
            assert found[contract.id] == OnCallTotal(consultants, Decimal(3500 + n * 10) * consultants, "DKK")
        else:
            assert found[contract.id] == OnCallTotal(0, Decimal("0.00"), contract.currency)
    assert await totals(ctx, [], MARCH) == {}
    # Past the size where contracts are named in the query, the month's reservations are read for all and
    # matched here: the same totals, and none for contracts outside the batch.
    monkeypatch.setattr(on_call, "_IDS_IN_QUERY", 2)
    assert await totals(ctx, made[:3], MARCH) == {c.id: found[c.id] for c in made[:3]}
    assert await totals(ctx, made, MARCH) == found

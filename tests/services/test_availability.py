"""Outages and service credits at service level: who records outages (admins and integrators anywhere,
a client manager on its own contracts and never program-wide), what is refused with nothing written,
month-spanning, overlapping and program-wide outages through the database, who reads them, and the
monthly batch in a constant number of statements."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import event, func, select

from api.models import AuditEntry, Outage, StaffRole, UserKind
from api.programs.loader import parse_program
from api.services import availability, identity, programs
from api.services.availability import NewOutage
from api.services.context import Actor, AppContext
from api.services.errors import DomainError, ErrorCode, NotFound, PermissionDenied, ValidationFailed
from tests.conftest import ADMIN, unique

NOVEMBER = date(2025, 11, 1)  # 30 days: 43,200 minutes
OCTOBER = date(2025, 10, 1)  # 31 days
TERM = (date(2025, 1, 1), date(2026, 12, 31))


def at(day: date, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def outage(contract_id: uuid.UUID | None, start: datetime, minutes: int, portion: str = "1", **fields) -> NewOutage:  # type: ignore[no-untyped-def]
    return NewOutage(start, start + timedelta(minutes=minutes), Decimal(portion), contract_id=contract_id, **fields)


def program_text(code: str) -> str:
    """A program of the test's own (so its program-wide outages touch no other test's contracts): plan
    `sla` with a 99.9 % target and two tiers, plan `plain` without availability terms."""
    return f'''
code = "{code}"
name = "Availability tests"
provider = "Tests"
timezone = "UTC"
currency = "EUR"

[plans.sla]
name = "SLA"

[plans.sla.availability]
target_percent = 99.9

[[plans.sla.availability.credits]]
below = 99.9
down_to = 99.0
credit_percent = 10

[[plans.sla.availability.credits]]
below = 99.0
down_to = 0
credit_percent = 30

[plans.plain]
name = "Plain"
'''


@pytest.fixture
async def own_program(ctx: AppContext) -> str:
    code = unique("avail")
    await programs.load_programs(ctx, ADMIN, [parse_program(program_text(code))])
    return code


async def make_manager(ctx: AppContext):  # type: ignore[no-untyped-def]
    email = f"{unique('cm')}@availability.example"
    user = await identity.create_user(
        ctx, ADMIN, identity.NewUser(email, "Carla Manager", "a long staff password", UserKind.STAFF,
                                     staff_role=StaffRole.CLIENT_MANAGER)
    )
    actor = Actor(kind="staff", ref=f"user:{user.id}", name=user.name, roles=frozenset({"client_manager"}), user_id=user.id)
    return user, actor


@pytest.fixture
async def premium(make_contract):  # type: ignore[no-untyped-def]
    return await make_contract(
        program="premium-availability", plan="premium-16", effective=TERM[0], end=TERM[1],
        monthly_fee=Decimal("2500.00"), currency="EUR",
    )


async def traces(ctx: AppContext) -> tuple[int, int]:
    async with ctx.db.read() as session:
        outages = await session.scalar(select(func.count()).select_from(Outage))
        audits = await session.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "outage.record")
        )
    return outages, audits


async def refused(ctx: AppContext, actor: Actor, new: NewOutage, error: type[DomainError]) -> DomainError:
    before = await traces(ctx)
    with pytest.raises(error) as raised:
        await availability.record_outage(ctx, actor, new)
    assert await traces(ctx) == before
    return raised.value


async def test_a_recorded_outage_earns_the_tier_the_program_file_states(ctx, premium):
    # 5 minutes of 43,200: 99.988 %, below 99.99 %: 10 % of the fee for the impacted half.
    recorded = await availability.record_outage(
        ctx, ADMIN, outage(premium.id, at(date(2025, 11, 3), 9), 5, "0.5", note="  API gateway down  ")
    )
    assert (recorded.note, recorded.impacted_portion, recorded.contract_id, recorded.program_id) == (
        "API gateway down", Decimal("0.5"), premium.id, None
    )
    found = await availability.service_credit(ctx, ADMIN, premium.id, NOVEMBER)
    assert found is not None
    assert (found.month, found.minutes, found.downtime_minutes) == (NOVEMBER, 43_200, 5)
    assert found.availability_percent == Decimal(43_195 * 100) / 43_200
    assert (found.credit_percent, found.tier_below, found.tier_down_to) == (10, Decimal("99.99"), Decimal("99.0"))
    assert (found.impacted_portion, found.fee, found.amount, found.currency) == (
        Decimal("0.5"), Decimal("2500.00"), Decimal("125.00"), "EUR"
    )
    # Any day of the month names it.
    assert await availability.service_credit(ctx, ADMIN, premium.id, date(2025, 11, 17)) == found
    async with ctx.db.read() as session:
        entry = await session.scalar(select(AuditEntry).where(AuditEntry.target_id == str(recorded.id)))
    assert entry is not None and entry.action == "outage.record" and entry.on_behalf_of_customer_id == premium.customer_id
    assert entry.detail["contract"] == premium.reference


async def test_the_boundaries_hold_through_the_database(ctx, make_contract):
    """432 minutes down in 43,200 is exactly 99.0 %: still 10 %; 433 is 25 %."""
    exact = await make_contract(program="premium-availability", plan="premium-32", effective=TERM[0], end=TERM[1])
    over = await make_contract(program="premium-availability", plan="premium-32", effective=TERM[0], end=TERM[1])
    # Two overlapping outages make up the 432 minutes: counted once.
    await availability.record_outage(ctx, ADMIN, outage(exact.id, at(date(2025, 11, 5), 10), 300, "0.25"))
    await availability.record_outage(ctx, ADMIN, outage(exact.id, at(date(2025, 11, 5), 12), 312, "0.75"))
    await availability.record_outage(ctx, ADMIN, outage(over.id, at(date(2025, 11, 5), 10), 433))
    exact_credit = await availability.service_credit(ctx, ADMIN, exact.id, NOVEMBER)
    over_credit = await availability.service_credit(ctx, ADMIN, over.id, NOVEMBER)
    assert exact_credit is not None and over_credit is not None
    assert (exact_credit.downtime_minutes, exact_credit.availability_percent, exact_credit.credit_percent) == (
        432, Decimal(99), 10
    )
    assert exact_credit.amount == Decimal("75.00")  # 1,000.00 × 0.75 × 10 %
    assert (over_credit.downtime_minutes, over_credit.credit_percent, over_credit.amount) == (433, 25, Decimal("250.00"))


async def test_an_outage_across_the_month_end_counts_in_each_month(ctx, premium):
    await availability.record_outage(ctx, ADMIN, outage(premium.id, at(date(2025, 10, 31), 23), 120))
    october = await availability.service_credit(ctx, ADMIN, premium.id, OCTOBER)
    november = await availability.service_credit(ctx, ADMIN, premium.id, NOVEMBER)
    assert october is not None and november is not None
    assert (october.minutes, october.downtime_minutes, october.credit_percent) == (44_640, 60, 10)
    assert (november.minutes, november.downtime_minutes, november.credit_percent) == (43_200, 60, 10)
    assert [o.started_at for o in await availability.list_outages(ctx, ADMIN, premium.id, OCTOBER)] == [
        at(date(2025, 10, 31), 23)
    ]
    assert len(await availability.list_outages(ctx, ADMIN, premium.id, NOVEMBER)) == 1
    assert await availability.list_outages(ctx, ADMIN, premium.id, date(2025, 12, 1)) == []


async def test_a_program_wide_outage_counts_for_every_contract_of_the_program_once(ctx, own_program, make_contract):
    first = await make_contract(program=own_program, plan="sla", effective=TERM[0], end=TERM[1])
    second = await make_contract(program=own_program, plan="sla", effective=TERM[0], end=TERM[1],
                                 monthly_fee=Decimal("3000.00"))
    plain = await make_contract(program=own_program, plan="plain", effective=TERM[0], end=TERM[1])
    await availability.record_outage(
        ctx, ADMIN, outage(None, at(date(2025, 11, 20), 6), 100, "0.4", program_code=own_program)
    )
    # The first contract also had its own outage, inside the program-wide one and with a larger portion.
    await availability.record_outage(ctx, ADMIN, outage(first.id, at(date(2025, 11, 20), 6, 30), 10, "0.9"))
    one = await availability.service_credit(ctx, ADMIN, first.id, NOVEMBER)
    two = await availability.service_credit(ctx, ADMIN, second.id, NOVEMBER)
    assert one is not None and two is not None
    # 100 of 43,200 minutes: 99.768… %, below the program's own 99.9 % target: 10 %.
    assert (one.downtime_minutes, one.target_percent, one.credit_percent, one.impacted_portion, one.amount) == (
        100, Decimal("99.9"), 10, Decimal("0.9"), Decimal("90.00")
    )
    assert (two.downtime_minutes, two.impacted_portion, two.amount) == (100, Decimal("0.4"), Decimal("120.00"))
    assert await availability.service_credit(ctx, ADMIN, plain.id, NOVEMBER) is None
    assert [o.program_id is not None for o in await availability.list_outages(ctx, ADMIN, first.id)] == [True, False]
    assert len(await availability.list_outages(ctx, ADMIN, second.id, NOVEMBER)) == 1


async def test_refusals_name_the_field_and_write_nothing(ctx, premium, own_program, make_contract):
    start = at(date(2025, 11, 3), 9)
    cases = [
        (NewOutage(start, start, Decimal(1), contract_id=premium.id), "endedAt"),
        (NewOutage(start, start - timedelta(minutes=1), Decimal(1), contract_id=premium.id), "endedAt"),
        (NewOutage(start.replace(tzinfo=None), start + timedelta(hours=1), Decimal(1), contract_id=premium.id), "startedAt"),
        (NewOutage(start, (start + timedelta(hours=1)).replace(tzinfo=None), Decimal(1), contract_id=premium.id), "endedAt"),
        (outage(premium.id, start, 10, "0"), "impactedPortion"),
        (outage(premium.id, start, 10, "-0.5"), "impactedPortion"),
        (outage(premium.id, start, 10, "1.01"), "impactedPortion"),
        (outage(premium.id, start, 10, "0.00005"), "impactedPortion"),
        (outage(premium.id, start, 10, "NaN"), "impactedPortion"),
        (outage(premium.id, at(date(2026, 3, 10), 11, 55), 10), "endedAt"),  # ends after now (12:00)
        (outage(premium.id, at(date(1999, 12, 31), 23), 120), "startedAt"),
        (outage(premium.id, at(date(2025, 1, 1)), 367 * 24 * 60), "endedAt"),
        (outage(premium.id, at(date(2024, 12, 30)), 60), "startedAt"),  # before the contract's term
        (outage(premium.id, start, 10, note="x" * 2001), "note"),
        (outage(premium.id, start, 10, program_code=own_program), "contractId"),  # both scopes
        (outage(None, start, 10), "contractId"),  # neither
    ]
    for new, field in cases:
        error = await refused(ctx, ADMIN, new, ValidationFailed)
        assert error.field == field, (new, error.message)

    tiered = await make_contract(program="tiered-support", plan="premium", effective=TERM[0], end=TERM[1])
    error = await refused(ctx, ADMIN, outage(tiered.id, start, 10), ValidationFailed)
    assert (error.code, error.field) == (ErrorCode.NO_AVAILABILITY_TERMS, "contractId")
    error = await refused(ctx, ADMIN, outage(None, start, 10, program_code="advisory-assure"), ValidationFailed)
    assert (error.code, error.field) == (ErrorCode.NO_AVAILABILITY_TERMS, "programCode")
    error = await refused(ctx, ADMIN, outage(None, start, 10, program_code="no-such-program"), NotFound)
    assert error.field == "programCode"
    error = await refused(ctx, ADMIN, outage(uuid.uuid4(), start, 10), NotFound)
    assert error.field == "contractId"


async def test_who_records_outages(ctx, premium, own_program, make_contract):
    start = at(date(2025, 11, 4), 9)
    manager, manager_actor = await make_manager(ctx)
    managed = await make_contract(program="premium-availability", plan="premium-16", effective=TERM[0], end=TERM[1],
                                  client_manager_email=manager.email)
    customer = Actor(kind="customer", ref="user:c", name="Customer user", customer_id=premium.customer_id)
    engineer = Actor(kind="staff", ref="user:s", name="Support engineer", roles=frozenset({"support_engineer"}))
    integrator = Actor(kind="staff", ref="token:i", name="Integrator", roles=frozenset({"integrator"}))
    read_only = Actor(kind="staff", ref="token:r", name="Read-only", roles=frozenset({"integrator"}), read_only=True)
    for actor in (customer, engineer, read_only):
        await refused(ctx, actor, outage(premium.id, start, 5), PermissionDenied)
    # A client manager records on the contracts assigned to them only, and never program-wide.
    await refused(ctx, manager_actor, outage(premium.id, start, 5), NotFound)
    await refused(ctx, manager_actor, outage(None, start, 5, program_code=own_program), PermissionDenied)
    assert (await availability.record_outage(ctx, manager_actor, outage(managed.id, start, 5))).contract_id == managed.id
    assert (await availability.record_outage(ctx, integrator, outage(premium.id, start, 5))).contract_id == premium.id
    recorded = await availability.record_outage(ctx, integrator, outage(None, start, 5, program_code=own_program))
    assert recorded.program_id is not None and recorded.created_by_ref == "token:i"


async def test_whoever_reads_the_contract_reads_its_outages_and_credit(ctx, premium, make_contract):
    await availability.record_outage(ctx, ADMIN, outage(premium.id, at(date(2025, 11, 6), 9), 30))
    own = Actor(kind="customer", ref="user:c", name="Customer user", customer_id=premium.customer_id)
    other = Actor(kind="customer", ref="user:o", name="Other customer", customer_id=uuid.uuid4())
    assert len(await availability.list_outages(ctx, own, premium.id, NOVEMBER)) == 1
    found = await availability.service_credit(ctx, own, premium.id, NOVEMBER)
    assert found is not None and found.downtime_minutes == 30
    with pytest.raises(NotFound):
        await availability.list_outages(ctx, other, premium.id)
    with pytest.raises(NotFound):
        await availability.service_credit(ctx, other, premium.id, NOVEMBER)


async def test_credit_outside_the_term_is_refused_and_a_plan_without_terms_has_none(ctx, make_contract):
    late = await make_contract(program="premium-availability", plan="premium-16", effective=date(2025, 11, 16),
                               end=date(2026, 11, 15), monthly_fee=Decimal("3000.00"))
    with pytest.raises(ValidationFailed) as raised:
        await availability.service_credit(ctx, ADMIN, late.id, OCTOBER)
    assert raised.value.field == "month"
    # Its first month is measured over the 15 days in force and credited on half the fee.
    await availability.record_outage(ctx, ADMIN, outage(late.id, at(date(2025, 11, 20)), 5))
    first = await availability.service_credit(ctx, ADMIN, late.id, NOVEMBER)
    assert first is not None
    assert (first.minutes, first.downtime_minutes, first.fee, first.credit_percent, first.amount) == (
        21_600, 5, Decimal("1500.00"), 10, Decimal("150.00")
    )
    advisory = await make_contract()
    assert await availability.service_credit(ctx, ADMIN, advisory.id, NOVEMBER) is None


async def test_the_monthly_batch_takes_the_same_statements_for_3_or_30_contracts(ctx, make_contract, own_program, monkeypatch):
    made = []
    for n in range(30):
        program, plan = (own_program, "sla") if n % 3 == 0 else ("premium-availability", "premium-60")
        if n % 5 == 4:
            program, plan = "advisory-assure", "small"
        contract = await make_contract(program=program, plan=plan, effective=TERM[0], end=TERM[1])
        made.append(contract)
        if n % 2 == 0 and plan != "small":
            await availability.record_outage(ctx, ADMIN, outage(contract.id, at(date(2025, 11, 7), 1), 20 + n))
    await availability.record_outage(ctx, ADMIN, outage(None, at(date(2025, 11, 7), 1), 10, "0.5", program_code=own_program))
    late = await make_contract(program="premium-availability", plan="premium-16", effective=date(2025, 12, 1), end=TERM[1])

    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        statements.append(statement)

    engine = ctx.db.engine.sync_engine
    results = []
    async with ctx.db.read() as session:
        await session.execute(select(1))  # the transaction's BEGIN is not the batch's
        event.listen(engine, "before_cursor_execute", count)
        try:
            for batch in (made[:3], [*made, late]):
                statements.clear()
                results.append(await availability.service_credits(session, batch, NOVEMBER))
                results.append(len(statements))
        finally:
            event.remove(engine, "before_cursor_execute", count)
    small, small_count, large, large_count = results
    assert small_count == large_count == 2, (small_count, large_count)
    assert large[late.id] is None  # not in force in November
    for n, contract in enumerate(made):
        found = large[contract.id]
        if n % 5 == 4:
            assert found is None
            continue
        assert found is not None
        own_minutes = 20 + n if n % 2 == 0 else 0
        program_minutes = 10 if n % 3 == 0 else 0
        assert found.downtime_minutes == max(own_minutes, program_minutes), n
        single = await availability.service_credit(ctx, ADMIN, contract.id, NOVEMBER)
        assert single == found
    assert small == {c.id: large[c.id] for c in made[:3]}
    # Past the size where contracts are named in the query, the month's outages are read for all and
    # matched here: the same credits.
    monkeypatch.setattr(availability, "_IDS_IN_QUERY", 2)
    async with ctx.db.read() as session:
        assert await availability.service_credits(session, [*made, late], NOVEMBER) == large


async def test_the_demo_records_an_outage_that_earns_a_credit_and_reserves_on_call_days_once(database_factory, clock):
    from api.config import PROJECT_ROOT, Settings
    from api.db import Database
    from api.migrate import upgrade
    from api.models import Contract, OnCallReservation
    from api.services import on_call
    from api.services.demo import load_demo

    url = database_factory.new()
    upgrade(url)
    db = Database(url)
    ctx = AppContext(db=db, settings=Settings(database_url=url), clock=clock)
    try:
        first = await load_demo(ctx, PROJECT_ROOT / "programs")
        again = await load_demo(ctx, PROJECT_ROOT / "programs")
        assert (first.outages, first.on_call_reservations, again.outages, again.on_call_reservations) == (1, 1, 0, 0)
        async with ctx.db.read() as session:
            refs = {c.reference: c for c in await session.scalars(select(Contract))}
            assert await session.scalar(select(func.count()).select_from(Outage)) == 1
            assert await session.scalar(select(func.count()).select_from(OnCallReservation)) == 1
        premium = refs["DEMO-PREMIUM-AVAILABILITY-PREMIUM-16"]
        # NOW is 2026-03-10: last month is February (40,320 minutes); 90 of them down for half the service.
        found = await availability.service_credit(ctx, ADMIN, premium.id, date(2026, 2, 1))
        assert found is not None
        assert (found.downtime_minutes, found.credit_percent, found.impacted_portion, found.amount, found.currency) == (
            90, 10, Decimal("0.5"), Decimal("125.00"), "EUR"
        )
        tiered = refs["DEMO-TIERED-SUPPORT-PREMIUM"]
        [reserved] = await on_call.list_on_call(ctx, ADMIN, tiered.id)
        assert (reserved.on_date, reserved.window, reserved.consultants, reserved.day_rate) == (
            date(2026, 3, 21), "weekends", 2, Decimal("4200.00")
        )
    finally:
        await db.dispose()

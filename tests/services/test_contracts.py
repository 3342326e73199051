"""Contracts at service level: creation refusals, and the entitlement periods a contract gives."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import select

from api.models import Customer
from api.services import contracts, ledger
from api.services.context import Actor
from api.services.errors import Conflict, ErrorCode, NotFound, PeriodEnded, PermissionDenied, ValidationFailed
from tests.conftest import ADMIN, unique


def new_contract(customer_id: uuid.UUID, **fields: object) -> contracts.NewContract:
    values: dict[str, object] = {
        "reference": unique("ORD"),
        "customer_id": customer_id,
        "program_code": "advisory-assure",
        "plan_code": "small",
        "effective_date": date(2026, 2, 15),
        "end_date": date(2027, 2, 14),
        "monthly_fee": Decimal("1000.00"),
        "currency": "EUR",
    }
    values.update(fields)
    return contracts.NewContract(**values)  # type: ignore[arg-type]


async def periods(ctx, contract_id, bucket: str) -> list[tuple[date, date]]:  # type: ignore[no-untyped-def]
    return [(p.period.start, p.period.end) for p in await contracts.bucket_periods(ctx, ADMIN, contract_id, bucket)]


async def period_on(ctx, contract_id, day: date | None = None, bucket: str | None = None):  # type: ignore[no-untyped-def]
    found = await contracts.entitlements(ctx, ADMIN, contract_id, day)
    if bucket is not None:
        found = [p for p in found if p.bucket_code == bucket]
    assert len(found) == 1, found
    return found[0]


# --- creation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "error", "field"),
    [
        ({"reference": ""}, ValidationFailed, "reference"),
        ({"reference": "has space"}, ValidationFailed, "reference"),
        ({"reference": "-leading-dash"}, ValidationFailed, "reference"),
        ({"reference": "R" * 65}, ValidationFailed, "reference"),
        ({"reference": "ORD-1\n"}, ValidationFailed, "reference"),
        ({"end_date": date(2026, 2, 14)}, ValidationFailed, "endDate"),
        ({"monthly_fee": Decimal("-0.01")}, ValidationFailed, "monthlyFee"),
        ({"monthly_fee": Decimal("10.001")}, ValidationFailed, "monthlyFee"),
        ({"monthly_fee": Decimal("NaN")}, ValidationFailed, "monthlyFee"),
        ({"monthly_fee": Decimal("Infinity")}, ValidationFailed, "monthlyFee"),
        ({"monthly_fee": Decimal("1E+30")}, ValidationFailed, "monthlyFee"),
        ({"monthly_fee": Decimal("1000000000000.00")}, ValidationFailed, "monthlyFee"),  # > Numeric(14, 2)
        ({"currency": "eur"}, ValidationFailed, "currency"),
        ({"currency": "EURO"}, ValidationFailed, "currency"),
        ({"program_code": "no-such-program"}, NotFound, "planCode"),
        ({"plan_code": "no-such-plan"}, NotFound, "planCode"),
        ({"plan_code": "custom"}, ValidationFailed, "customAllowances"),
        ({"plan_code": "custom", "custom_allowances": {"activities": 0}}, ValidationFailed, "customAllowances"),
        ({"plan_code": "custom", "custom_allowances": {"activities": -3}}, ValidationFailed, "customAllowances"),
        ({"plan_code": "custom", "custom_allowances": {"activities": 5, "hours": 5}}, ValidationFailed, "customAllowances"),
        ({"custom_allowances": {"activities": 7}}, ValidationFailed, "customAllowances"),
    ],
    ids=lambda v: repr(v)[:40] if isinstance(v, dict) else None,
)
async def test_contract_creation_refusals_write_nothing(ctx, make_customer, shipped_programs, fields, error, field):
    customer = await make_customer()
    with pytest.raises(error) as refused:
        await contracts.create_contract(ctx, ADMIN, new_contract(customer.id, **fields))
    assert type(refused.value) is error
    assert refused.value.field == field
    assert await contracts.list_contracts(ctx, ADMIN, customer_id=customer.id) == []


async def test_contract_creation_refuses_an_unknown_customer(ctx, shipped_programs):
    missing = uuid.uuid4()
    with pytest.raises(NotFound) as refused:
        await contracts.create_contract(ctx, ADMIN, new_contract(missing))
    assert (refused.value.code, refused.value.field) == (ErrorCode.NOT_FOUND, "customerId")
    assert await contracts.list_contracts(ctx, ADMIN, customer_id=missing) == []


async def test_contract_references_are_unique(ctx, make_customer, shipped_programs):
    customer = await make_customer()
    first = await contracts.create_contract(ctx, ADMIN, new_contract(customer.id))
    with pytest.raises(Conflict) as refused:
        await contracts.create_contract(ctx, ADMIN, new_contract(customer.id, reference=first.reference, plan_code="large"))
    assert (refused.value.code, refused.value.field) == (ErrorCode.ALREADY_EXISTS, "reference")
    assert [c.id for c in await contracts.list_contracts(ctx, ADMIN, customer_id=customer.id)] == [first.id]


async def test_only_provider_staff_create_contracts(ctx, make_customer, shipped_programs):
    customer = await make_customer()
    actor = Actor(kind="customer", ref="c", name="Customer", customer_id=customer.id)
    with pytest.raises(PermissionDenied):
        await contracts.create_contract(ctx, actor, new_contract(customer.id))
    assert await contracts.list_contracts(ctx, ADMIN, customer_id=customer.id) == []


async def test_created_contract(ctx, make_customer, shipped_programs):
    customer = await make_customer()
    request = new_contract(customer.id, plan_code="custom", custom_allowances={"activities": 15})
    contract = await contracts.create_contract(ctx, ADMIN, request)
    assert await contracts.get_contract(ctx, ADMIN, contract.id) is not None
    stored = await contracts.get_contract(ctx, ADMIN, contract.id)
    assert (stored.reference, stored.customer_id, stored.monthly_fee) == (request.reference, customer.id, Decimal("1000.00"))
    assert stored.custom_allowances == {"activities": 15}
    entitlement = await period_on(ctx, contract.id)
    assert (entitlement.allowance, entitlement.consumed, entitlement.remaining) == (15, 0, 15)


async def test_contracts_are_seen_by_their_customer_only(ctx, make_contract, make_customer):
    contract = await make_contract()
    owner = Actor(kind="customer", ref="o", name="Owner", customer_id=contract.customer_id)
    stranger = Actor(kind="customer", ref="s", name="Stranger", customer_id=(await make_customer()).id)
    assert (await contracts.get_contract(ctx, owner, contract.id)).id == contract.id
    assert len(await contracts.entitlements(ctx, owner, contract.id)) == 1
    with pytest.raises(NotFound):
        await contracts.get_contract(ctx, stranger, contract.id)
    assert await contracts.entitlements(ctx, stranger, contract.id) == []


# --- periods ----------------------------------------------------------------------------------


async def test_contract_anchored_quarters(ctx, make_contract):
    contract = await make_contract()  # 2026-02-15 .. 2027-02-14
    assert await periods(ctx, contract.id, "activities") == [
        (date(2026, 2, 15), date(2026, 5, 14)),
        (date(2026, 5, 15), date(2026, 8, 14)),
        (date(2026, 8, 15), date(2026, 11, 14)),
        (date(2026, 11, 15), date(2027, 2, 14)),
    ]
    today = await period_on(ctx, contract.id)
    assert (today.period.start, today.period.end, today.allowance, today.consumed) == (
        date(2026, 2, 15), date(2026, 5, 14), 5, 0,
    )
    assert await contracts.entitlements(ctx, ADMIN, contract.id, date(2026, 2, 14)) == []
    assert await contracts.entitlements(ctx, ADMIN, contract.id, date(2027, 2, 15)) == []


async def test_contract_anchored_quarters_clamp_to_month_ends(ctx, make_contract):
    contract = await make_contract(effective=date(2026, 1, 31))  # ends 2027-01-30
    assert contract.end_date == date(2027, 1, 30)
    assert await periods(ctx, contract.id, "activities") == [
        (date(2026, 1, 31), date(2026, 4, 29)),
        (date(2026, 4, 30), date(2026, 7, 30)),
        (date(2026, 7, 31), date(2026, 10, 30)),
        (date(2026, 10, 31), date(2027, 1, 30)),
    ]
    for day, start in [
        (date(2026, 1, 31), date(2026, 1, 31)),
        (date(2026, 4, 29), date(2026, 1, 31)),
        (date(2026, 4, 30), date(2026, 4, 30)),
        (date(2026, 7, 30), date(2026, 4, 30)),
        (date(2026, 7, 31), date(2026, 7, 31)),
        (date(2026, 10, 30), date(2026, 7, 31)),
        (date(2026, 10, 31), date(2026, 10, 31)),
        (date(2027, 1, 30), date(2026, 10, 31)),
    ]:
        assert (await period_on(ctx, contract.id, day)).period.start == start, day


async def test_a_short_term_clips_its_last_period(ctx, make_contract):
    contract = await make_contract(end=date(2026, 6, 30))
    assert await periods(ctx, contract.id, "activities") == [
        (date(2026, 2, 15), date(2026, 5, 14)),
        (date(2026, 5, 15), date(2026, 6, 30)),
    ]


async def test_calendar_anchored_hours(ctx, clock, make_contract):
    # Premium Support 16: 16 expert hours (960 minutes) per calendar quarter, program time zone Europe/Berlin.
    contract = await make_contract(program="premium-availability", plan="premium-16")
    assert await periods(ctx, contract.id, "expert-hours") == [
        (date(2026, 2, 15), date(2026, 3, 31)),
        (date(2026, 4, 1), date(2026, 6, 30)),
        (date(2026, 7, 1), date(2026, 9, 30)),
        (date(2026, 10, 1), date(2026, 12, 31)),
        (date(2027, 1, 1), date(2027, 2, 14)),
    ]
    today = await period_on(ctx, contract.id, bucket="expert-hours")
    assert (today.period.start, today.period.end) == (date(2026, 2, 15), date(2026, 3, 31))
    assert (today.allowance, today.bucket.unit, today.bucket.ledger_unit) == (960, "hours", "minutes")
    assert today.expires_in_days == 21

    march = await ledger.consume_entitlement(
        ctx, ADMIN, ledger.Consumption(contract.id, "expert-hours", Decimal(90), on=date(2026, 3, 31))
    )
    assert march.entry.period_start == date(2026, 2, 15)

    # 23:30 UTC on March 31 is already April 1 in Berlin: today's period is the second quarter.
    clock.instant = datetime(2026, 3, 31, 23, 30, tzinfo=UTC)
    april = await ledger.consume_entitlement(ctx, ADMIN, ledger.Consumption(contract.id, "expert-hours", Decimal(60)))
    assert april.entry.period_start == date(2026, 4, 1)
    with pytest.raises(PeriodEnded):
        await ledger.consume_entitlement(
            ctx, ADMIN, ledger.Consumption(contract.id, "expert-hours", Decimal(15), on=date(2026, 3, 31))
        )
    first, second = (await contracts.bucket_periods(ctx, ADMIN, contract.id, "expert-hours"))[:2]
    assert (first.consumed, first.ended, first.expired) == (90, True, 870)
    assert (second.consumed, second.ended, second.expired, second.remaining) == (60, False, 0, 900)


async def test_yearly_contract_anchored_hours(ctx, make_contract):
    contract = await make_contract(program="support-by-plan", plan="enterprise-advanced")
    assert await periods(ctx, contract.id, "enablement") == [(date(2026, 2, 15), date(2027, 2, 14))]
    enablement = await period_on(ctx, contract.id, bucket="enablement")
    assert (enablement.allowance, enablement.bucket.increment) == (8 * 60, 30)


async def test_expires_in_days_and_expired(ctx, clock, make_contract):
    contract = await make_contract()
    await ledger.consume_entitlement(ctx, ADMIN, ledger.Consumption(contract.id, "activities", Decimal(2)))

    now = await period_on(ctx, contract.id)
    assert (now.expires_in_days, now.ended, now.expired, now.remaining) == (65, False, 0, 3)

    clock.instant = datetime(2026, 5, 14, 23, 59, tzinfo=UTC)  # the quarter's last day (program time zone UTC)
    last_day = await period_on(ctx, contract.id)
    assert (last_day.period.end, last_day.expires_in_days, last_day.ended, last_day.expired) == (
        date(2026, 5, 14), 0, False, 0,
    )

    clock.instant = datetime(2026, 5, 15, 0, 0, tzinfo=UTC)
    ended = await period_on(ctx, contract.id, date(2026, 3, 10))
    assert (ended.expires_in_days, ended.ended, ended.expired, ended.remaining) == (-1, True, 3, 3)
    current = await period_on(ctx, contract.id)
    assert (current.period.start, current.expires_in_days, current.expired, current.consumed) == (
        date(2026, 5, 15), 91, 0, 0,
    )
    every = await contracts.bucket_periods(ctx, ADMIN, contract.id, "activities")
    assert [p.expired for p in every] == [3, 0, 0, 0]
    assert [p.ended for p in every] == [True, False, False, False]

    # A fully used quarter expires nothing.
    await ledger.consume_entitlement(ctx, ADMIN, ledger.Consumption(contract.id, "activities", Decimal(5)))
    clock.instant = datetime(2026, 9, 1, tzinfo=UTC)
    every = await contracts.bucket_periods(ctx, ADMIN, contract.id, "activities")
    assert [p.expired for p in every] == [3, 0, 0, 0]
    assert [p.expired for p in every if p.ended] == [3, 0]


async def test_entitlements_for_several_contracts_at_once(ctx, make_contract):
    small, hours = await make_contract(), await make_contract(program="premium-availability", plan="premium-32")
    missing = uuid.uuid4()
    found = await contracts.entitlements_for_contracts(
        ctx, ADMIN, [(small.id, None), (hours.id, date(2026, 4, 2)), (missing, None), (small.id, date(2030, 1, 1))]
    )
    assert [(p.bucket_code, p.allowance) for p in found[(small.id, None)]] == [("activities", 5)]
    assert [(p.period.start, p.allowance) for p in found[(hours.id, date(2026, 4, 2))]] == [(date(2026, 4, 1), 32 * 60)]
    assert found[(missing, None)] == []
    assert found[(small.id, date(2030, 1, 1))] == []


async def test_bucket_periods_refuses_an_unknown_bucket(ctx, make_contract):
    contract = await make_contract()
    with pytest.raises(ValidationFailed) as refused:
        await contracts.bucket_periods(ctx, ADMIN, contract.id, "nope")
    assert refused.value.field == "bucket"


@pytest.mark.parametrize(
    ("fields", "field"),
    [({"code": "acme\n"}, "code"), ({"code": "Acme"}, "code"), ({"email": "it@acme.example\n"}, "email")],
)
async def test_customer_creation_refuses_malformed_codes_and_emails(ctx, fields, field):
    from api.services import parties

    values = {"code": unique("cust"), "name": "Acme", **fields}
    with pytest.raises(ValidationFailed) as refused:
        await parties.create_customer(ctx, ADMIN, parties.NewCustomer(**values))
    assert refused.value.field == field
    async with ctx.db.read() as session:
        assert await session.scalar(select(Customer).where(Customer.code == values["code"])) is None

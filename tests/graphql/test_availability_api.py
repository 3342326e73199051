"""Service levels over GraphQL with real credentials: staff record outages (on one contract, or for every
contract of a program), the customer reads its month's availability, credit tier and amount and the outages
behind them; refusals come back as typed errors naming the field, with nothing written. On-call readiness:
the customer reserves days, reads them on its contract and cancels one before its day; a rate outside the
plan's range, a plan without the add-on and a past day are refused, with nothing written."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from api.models import AuditEntry, OnCallReservation, OutboxMessage, Outage, StaffRole, TokenScope, UserKind
from api.programs.loader import parse_program
from api.services import programs
from api.services.context import AppContext
from tests.conftest import ADMIN, NOW, unique
from tests.graphql.conftest import Caller, Connect

ERRORS = "__typename ... on UserError { code message field }"
OUTAGE_FIELDS = "id contractId startedAt endedAt impactedPortion note createdByName createdAt"
CREDIT_FIELDS = """
    month minutes downtimeMinutes availabilityPercent targetPercent tierBelow tierDownTo creditPercent
    impactedPortion fee amount currency
"""
RESERVATION_FIELDS = """
    id contractId addOn onDate consultants dayRate amount currency window status note createdByName viaPartnerId
    cancelledAt
"""

RECORD = f"""
mutation Record($input: RecordOutageInput!) {{
  recordOutage(input: $input) {{ {ERRORS} ... on RecordOutageSuccess {{ outage {{ {OUTAGE_FIELDS} }} }} }}
}}
"""
CREDIT = f"""
query Credit($c: ID!, $month: String!) {{ serviceCredit(contractId: $c, month: $month) {{ {CREDIT_FIELDS} }} }}
"""
OUTAGES = f"""
query Outages($c: ID!, $month: String) {{ outages(contractId: $c, month: $month) {{ {OUTAGE_FIELDS} }} }}
"""
RESERVE = f"""
mutation Reserve($input: ReserveOnCallInput!) {{
  reserveOnCall(input: $input) {{
    {ERRORS}
    ... on ReserveOnCallSuccess {{ reservations {{ {RESERVATION_FIELDS} }} }}
    ... on RateOutOfRangeError {{ minimum maximum currency }}
    ... on AddOnNotOfferedError {{ available }}
    ... on OnCallDateError {{ earliest latest }}
  }}
}}
"""
CANCEL = f"""
mutation Cancel($id: ID!) {{
  cancelOnCall(id: $id) {{ {ERRORS} ... on CancelOnCallSuccess {{ reservation {{ {RESERVATION_FIELDS} }} }} }}
}}
"""
RESERVATIONS = f"""
query Reservations($c: ID!, $month: String) {{
  contract(id: $c) {{ id onCallReservations(month: $month) {{ {RESERVATION_FIELDS} }} }}
}}
"""


def own_program(code: str) -> str:
    """A program of the test's own, so its program-wide outage touches no other test's contracts: plan `sla`
    (99.9 %, then 10 % down to 99.0 % and 30 % below), plan `plain` without availability terms."""
    return f'''
code = "{code}"
name = "Availability API tests"
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


async def outage_traces(ctx: AppContext) -> tuple[int, int]:
    """Outages, and audit entries of recorded outages."""
    async with ctx.db.read() as session:
        outages = await session.scalar(select(func.count()).select_from(Outage))
        audits = await session.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "outage.record")
        )
    return int(outages or 0), int(audits or 0)


async def on_call_traces(ctx: AppContext) -> tuple[int, int, int]:
    """On-call reservations, their audit entries and their messages."""
    async with ctx.db.read() as session:
        rows = await session.scalar(select(func.count()).select_from(OnCallReservation))
        audits = await session.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.action.like("on_call.%"))
        )
        messages = await session.scalar(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.kind.like("on_call_%"))
        )
    return int(rows or 0), int(audits or 0), int(messages or 0)


async def record(caller: Caller, **fields: Any) -> dict[str, Any]:
    return (await caller.data(RECORD, {"input": fields}))["recordOutage"]


async def credit(caller: Caller, contract_id: object, month: str) -> dict[str, Any] | None:
    return (await caller.data(CREDIT, {"c": str(contract_id), "month": month}))["serviceCredit"]


async def outages(caller: Caller, contract_id: object, month: str | None = None) -> list[dict[str, Any]] | None:
    return (await caller.data(OUTAGES, {"c": str(contract_id), "month": month}))["outages"]


async def reserve(
    caller: Caller, contract_id: object, *days: str, rate: str = "4200.00", **fields: Any
) -> dict[str, Any]:
    variables = {"contractId": str(contract_id), "dates": list(days), "consultants": 2, "dayRate": rate, **fields}
    return (await caller.data(RESERVE, {"input": variables}))["reserveOnCall"]


async def refused_query(caller: Caller, query: str, variables: dict[str, Any], name: str) -> str:
    """A read refused as a GraphQL error (a field it cannot answer): its one message."""
    response = await caller.post(query, variables)
    assert response.status_code == 200, response.text
    body = response.json()
    [error] = body["errors"]
    assert error["path"][0] == name, error
    assert body["data"] is None or body["data"][name] is None, body
    return error["message"]


@pytest.fixture
async def premium(make_contract):  # type: ignore[no-untyped-def]
    # Premium 16 of the premium-availability program: 99.99 %, then 10 % down to 99.0 %, 25 % to 95.0 %, 50 %.
    return await make_contract(
        program="premium-availability", plan="premium-16", effective=date(2025, 1, 1), end=date(2026, 12, 31),
        monthly_fee=Decimal("2500.00"), currency="EUR",
    )


async def test_an_outage_staff_record_earns_the_customer_its_credit(ctx, connect: Connect, premium):
    admin, admin_user, _ = await connect.user(name="Ada Admin")
    customer, _, _ = await connect.user(UserKind.CUSTOMER, customer_id=premium.customer_id)

    # 10:00-10:05 in Copenhagen (UTC+1 in November): 5 minutes, half the service.
    done = await record(
        admin, contractId=str(premium.id), startedAt="2025-11-03T10:00:00+01:00",
        endedAt="2025-11-03T10:05:00+01:00", impactedPortion="0.5", note="  API gateway down  ",
    )
    assert done["__typename"] == "RecordOutageSuccess", done
    outage = done["outage"]
    assert (outage["contractId"], Decimal(outage["impactedPortion"]), outage["note"]) == (
        str(premium.id), Decimal("0.5"), "API gateway down"
    )
    assert outage["createdByName"].startswith("Ada Admin"), outage
    assert (outage["startedAt"], outage["endedAt"]) == ("2025-11-03T09:00:00+00:00", "2025-11-03T09:05:00+00:00")
    async with ctx.db.read() as session:
        entry = await session.scalar(select(AuditEntry).where(AuditEntry.target_id == outage["id"]))
    assert entry is not None
    assert (entry.action, entry.actor_ref, entry.on_behalf_of_customer_id) == (
        "outage.record", f"user:{admin_user.id}", premium.customer_id
    )

    # November has 30 days: 43,200 minutes, 5 of them down. 43,195 / 43,200 = 99.98843 %: below 99.99 %, at or
    # above 99.0 %, the 10 % tier. 2,500.00 × 0.5 × 10 % = 125.00.
    found = await credit(customer, premium.id, "2025-11")
    assert found is not None
    assert (found["month"], found["minutes"], found["downtimeMinutes"]) == ("2025-11-01", 43_200, 5)
    assert Decimal(found["availabilityPercent"]) == Decimal(4_319_500) / Decimal(43_200)
    assert found["availabilityPercent"].startswith("99.98842592")
    assert [Decimal(found[k]) for k in ("targetPercent", "tierBelow", "tierDownTo", "creditPercent")] == [
        Decimal("99.99"), Decimal("99.99"), Decimal("99.0"), Decimal(10)
    ]
    assert (Decimal(found["impactedPortion"]), found["fee"], found["amount"], found["currency"]) == (
        Decimal("0.5"), "2500.00", "125.00", "EUR"
    )
    # October (31 days) had no outage: the target is met, no tier, nothing credited.
    october = await credit(customer, premium.id, "2025-10")
    assert october is not None
    assert (october["minutes"], october["downtimeMinutes"], october["tierBelow"], october["tierDownTo"]) == (
        44_640, 0, None, None
    )
    assert (Decimal(october["availabilityPercent"]), Decimal(october["creditPercent"]), Decimal(october["amount"])) == (
        100, 0, 0
    )

    # The outages behind it, by month.
    assert [o["id"] for o in await outages(customer, premium.id, "2025-11")] == [outage["id"]]
    assert [o["id"] for o in await outages(customer, premium.id)] == [outage["id"]]
    assert await outages(customer, premium.id, "2025-12") == []


async def test_a_program_wide_outage_counts_for_every_contract_of_the_program(ctx, connect: Connect, make_contract):
    code = unique("avail-api")
    await programs.load_programs(ctx, ADMIN, [parse_program(own_program(code))])
    first = await make_contract(program=code, plan="sla", effective=date(2025, 1, 1), end=date(2026, 12, 31),
                                monthly_fee=Decimal("1000.00"))
    second = await make_contract(program=code, plan="sla", effective=date(2025, 1, 1), end=date(2026, 12, 31),
                                 monthly_fee=Decimal("3000.00"))
    plain = await make_contract(program=code, plan="plain", effective=date(2025, 1, 1), end=date(2026, 12, 31))
    integrator, token, _ = await connect.token(TokenScope.PROVIDER)
    manager, _, _ = await connect.user(UserKind.STAFF, staff_role=StaffRole.CLIENT_MANAGER)
    program_wide = {
        "programCode": code, "startedAt": "2025-11-20T06:00:00Z", "endedAt": "2025-11-20T07:40:00Z",
        "impactedPortion": "0.4", "note": "Data centre power",
    }

    # Program-wide is for admins and integrators: a client manager is refused, and nothing is written.
    before = await outage_traces(ctx)
    denied = await record(manager, **program_wide)
    assert (denied["__typename"], denied["code"]) == ("PermissionDeniedError", "PERMISSION_DENIED"), denied
    assert await outage_traces(ctx) == before

    done = await record(integrator, **program_wide)
    assert done["__typename"] == "RecordOutageSuccess", done
    assert done["outage"]["contractId"] is None
    assert await outage_traces(ctx) == (before[0] + 1, before[1] + 1)

    # 100 of 43,200 minutes: 99.7685 %, below the program's 99.9 %: 10 %, on each contract's own fee.
    # 1,000.00 × 0.4 × 10 % = 40.00; 3,000.00 × 0.4 × 10 % = 120.00.
    for contract, amount in ((first, "40.00"), (second, "120.00")):
        customer, _, _ = await connect.user(UserKind.CUSTOMER, customer_id=contract.customer_id)
        found = await credit(customer, contract.id, "2025-11")
        assert found is not None
        assert (found["downtimeMinutes"], Decimal(found["targetPercent"]), Decimal(found["creditPercent"])) == (
            100, Decimal("99.9"), 10
        )
        assert (Decimal(found["tierBelow"]), Decimal(found["tierDownTo"])) == (Decimal("99.9"), Decimal("99.0"))
        assert (Decimal(found["impactedPortion"]), found["amount"], found["currency"]) == (
            Decimal("0.4"), amount, "EUR"
        )
        [seen] = await outages(customer, contract.id, "2025-11")
        assert (seen["id"], seen["contractId"], seen["note"]) == (done["outage"]["id"], None, "Data centre power")
    # A plan without availability terms has no service credit.
    plain_customer, _, _ = await connect.user(UserKind.CUSTOMER, customer_id=plain.customer_id)
    assert await credit(plain_customer, plain.id, "2025-11") is None


async def test_refusals_are_typed_errors_naming_the_field_and_write_nothing(
    ctx, connect: Connect, premium, make_contract
):
    admin, _, _ = await connect.user()
    customer, _, _ = await connect.user(UserKind.CUSTOMER, customer_id=premium.customer_id)
    start = {"contractId": str(premium.id), "startedAt": "2025-11-03T09:00:00Z"}
    before = await outage_traces(ctx)
    for fields, field in [
        ({"endedAt": "2025-11-03T08:59:00Z", "impactedPortion": "1"}, "endedAt"),  # before it started
        ({"endedAt": "2025-11-03T09:00:00Z", "impactedPortion": "1"}, "endedAt"),  # no time at all
        ({"endedAt": "2025-11-03T09:10:00Z", "impactedPortion": "0"}, "impactedPortion"),
        ({"endedAt": "2025-11-03T09:10:00Z", "impactedPortion": "1.5"}, "impactedPortion"),
        ({"endedAt": "2026-03-10T12:05:00Z", "impactedPortion": "1"}, "endedAt"),  # not over yet at NOW
    ]:
        refused = await record(admin, **start, **fields)
        assert (refused["__typename"], refused["code"], refused["field"]) == ("ValidationError", "INVALID", field), (
            fields, refused
        )
    denied = await record(customer, **start, endedAt="2025-11-03T09:10:00Z", impactedPortion="1")
    assert denied["__typename"] == "PermissionDeniedError", denied
    advisory = await make_contract()
    no_terms = await record(admin, **{**start, "contractId": str(advisory.id)}, endedAt="2025-11-03T09:10:00Z",
                            impactedPortion="1")
    assert (no_terms["__typename"], no_terms["code"], no_terms["field"]) == (
        "ValidationError", "NO_AVAILABILITY_TERMS", "contractId"
    )
    assert await outage_traces(ctx) == before

    # A month that is not YYYY-MM is a GraphQL error that names it; so is a month outside the contract's term.
    for query, name in ((CREDIT, "serviceCredit"), (OUTAGES, "outages")):
        message = await refused_query(customer, query, {"c": str(premium.id), "month": "2026-13"}, name)
        assert "'2026-13'" in message and "YYYY-MM" in message, message
    message = await refused_query(customer, CREDIT, {"c": str(premium.id), "month": "2024-12"}, "serviceCredit")
    assert "not in force in 2024-12" in message, message

    # Another customer's contract reads exactly as one that does not exist: null.
    other = await make_contract(program="premium-availability", plan="premium-16", effective=date(2025, 1, 1),
                                end=date(2026, 12, 31))
    await record(admin, contractId=str(other.id), startedAt="2025-11-03T09:00:00Z",
                 endedAt="2025-11-03T09:30:00Z", impactedPortion="1")
    for contract_id in (other.id, uuid.uuid4(), "not-an-id"):
        assert await credit(customer, contract_id, "2025-11") is None
        assert await outages(customer, contract_id, "2025-11") is None
    found = await credit(admin, other.id, "2025-11")
    assert found is not None and found["downtimeMinutes"] == 30


# ---- on-call readiness -----------------------------------------------------------------------------------------
# NOW is Tuesday 2026-03-10 12:00 UTC. Tiered Premium's on-call readiness: DKK 3,500-5,000 per consultant-day,
# evenings or weekends.


@pytest.fixture
async def tiered(make_contract):  # type: ignore[no-untyped-def]
    return await make_contract(
        program="tiered-support", plan="premium", effective=date(2026, 1, 1), end=date(2026, 12, 31),
        monthly_fee=Decimal("18500.00"), currency="DKK",
    )


async def test_the_customer_reserves_reads_and_cancels_on_call_days(ctx, connect: Connect, tiered):
    customer, _, _ = await connect.user(UserKind.CUSTOMER, customer_id=tiered.customer_id, name="Cleo Customer")

    made = await reserve(customer, tiered.id, "2026-03-17", "2026-03-14", note="Campaign launch")
    assert made["__typename"] == "ReserveOnCallSuccess", made
    saturday, tuesday = made["reservations"]
    # By day; each 2 consultants × DKK 4,200.00 = DKK 8,400.00.
    assert [
        (r["onDate"], r["window"], r["consultants"], r["dayRate"], r["amount"], r["currency"], r["status"])
        for r in (saturday, tuesday)
    ] == [
        ("2026-03-14", "weekends", 2, "4200.00", "8400.00", "DKK", "RESERVED"),
        ("2026-03-17", "evenings", 2, "4200.00", "8400.00", "DKK", "RESERVED"),
    ]
    assert {
        (r["contractId"], r["addOn"], r["note"], r["viaPartnerId"], r["cancelledAt"]) for r in (saturday, tuesday)
    } == {(str(tiered.id), "on-call-readiness", "Campaign launch", None, None)}
    assert all(r["createdByName"].startswith("Cleo Customer") for r in (saturday, tuesday))
    async with ctx.db.read() as session:
        actions = list(await session.scalars(
            select(AuditEntry.action).where(AuditEntry.target_id.in_([saturday["id"], tuesday["id"]]))
        ))
    assert actions == ["on_call.reserve", "on_call.reserve"]

    read = (await customer.data(RESERVATIONS, {"c": str(tiered.id), "month": "2026-03"}))["contract"]
    assert [r["id"] for r in read["onCallReservations"]] == [saturday["id"], tuesday["id"]]
    april = (await customer.data(RESERVATIONS, {"c": str(tiered.id), "month": "2026-04"}))["contract"]
    assert april["onCallReservations"] == []

    # Cancelled before its day: not charged.
    cancelled = (await customer.data(CANCEL, {"id": saturday["id"]}))["cancelOnCall"]
    assert cancelled["__typename"] == "CancelOnCallSuccess", cancelled
    reservation = cancelled["reservation"]
    assert (reservation["id"], reservation["status"], Decimal(reservation["amount"])) == (
        saturday["id"], "CANCELLED", 0
    )
    assert reservation["cancelledAt"] == NOW.isoformat()
    read = (await customer.data(RESERVATIONS, {"c": str(tiered.id), "month": None}))["contract"]
    assert [(r["onDate"], r["status"], Decimal(r["amount"])) for r in read["onCallReservations"]] == [
        ("2026-03-14", "CANCELLED", 0), ("2026-03-17", "RESERVED", Decimal("8400.00"))
    ]
    again = (await customer.data(CANCEL, {"id": saturday["id"]}))["cancelOnCall"]
    assert (again["__typename"], again["code"]) == ("ConflictError", "WRONG_STATUS"), again


async def test_on_call_refusals_are_typed_and_write_nothing(ctx, connect: Connect, make_customer, make_contract):
    holder = await make_customer()
    tiered = await make_contract(program="tiered-support", plan="premium", effective=date(2026, 1, 1),
                                 end=date(2026, 12, 31), currency="DKK", customer=holder)
    extended = await make_contract(program="tiered-support", plan="extended", effective=date(2026, 1, 1),
                                   currency="DKK", customer=holder)
    customer, _, _ = await connect.user(UserKind.CUSTOMER, customer_id=holder.id)
    assert (await reserve(customer, tiered.id, "2026-03-14"))["__typename"] == "ReserveOnCallSuccess"
    # Today may be reserved, but no longer cancelled: the day has begun, and it is charged.
    [today] = (await reserve(customer, tiered.id, "2026-03-10"))["reservations"]
    stranger_contract = await make_contract(program="tiered-support", plan="premium", effective=date(2026, 1, 1),
                                            currency="DKK")
    stranger, _, _ = await connect.user(UserKind.CUSTOMER, customer_id=stranger_contract.customer_id)
    listed = (await customer.data(RESERVATIONS, {"c": str(tiered.id), "month": None}))["contract"]
    [_, mine] = listed["onCallReservations"]

    before = await on_call_traces(ctx)
    too_late = (await customer.data(CANCEL, {"id": today["id"]}))["cancelOnCall"]
    assert (too_late["__typename"], too_late["code"]) == ("ValidationError", "TOO_LATE_TO_CANCEL"), too_late
    assert "has begun" in too_late["message"]
    for rate in ("3499.99", "5000.01"):
        refused = await reserve(customer, tiered.id, "2026-03-21", rate=rate)
        assert (refused["__typename"], refused["code"], refused["field"]) == (
            "RateOutOfRangeError", "RATE_OUT_OF_RANGE", "dayRate"
        ), refused
        assert (Decimal(refused["minimum"]), Decimal(refused["maximum"]), refused["currency"]) == (
            Decimal(3500), Decimal(5000), "DKK"
        )
        assert f"a day rate of DKK {Decimal(rate):,} is outside the range" in refused["message"], refused["message"]
        assert "DKK 3,500.00–5,000.00 per consultant and day" in refused["message"], refused["message"]

    refused = await reserve(customer, extended.id, "2026-03-21")
    assert (refused["__typename"], refused["code"], refused["field"], refused["available"]) == (
        "AddOnNotOfferedError", "ADD_ON_NOT_OFFERED", "contractId", []
    ), refused
    assert "offers no on-call readiness" in refused["message"]

    # A past day: all of the days or none.
    refused = await reserve(customer, tiered.id, "2026-03-21", "2026-03-09")
    assert (refused["__typename"], refused["code"], refused["field"], refused["earliest"], refused["latest"]) == (
        "OnCallDateError", "DATE_IN_PAST", "dates", "2026-03-10", "2026-12-31"
    ), refused
    refused = await reserve(customer, tiered.id, "2027-01-02")
    assert (refused["__typename"], refused["code"]) == ("OnCallDateError", "AFTER_CONTRACT_END"), refused
    # A day already reserved.
    refused = await reserve(customer, tiered.id, "2026-03-21", "2026-03-14")
    assert (refused["__typename"], refused["field"]) == ("ConflictError", "dates"), refused
    assert "2026-03-14" in refused["message"]

    # Another customer reaches neither the contract nor its reservations: as if they did not exist.
    assert (await stranger.data(RESERVATIONS, {"c": str(tiered.id), "month": None}))["contract"] is None
    refused = await reserve(stranger, tiered.id, "2026-03-21")
    missing = await reserve(stranger, uuid.uuid4(), "2026-03-21")
    assert (refused["__typename"], refused["field"]) == (missing["__typename"], missing["field"]) == (
        "NotFoundError", "contractId"
    )
    nobody = str(uuid.uuid4())
    refused = (await stranger.data(CANCEL, {"id": mine["id"]}))["cancelOnCall"]
    missing = (await stranger.data(CANCEL, {"id": nobody}))["cancelOnCall"]
    assert refused["__typename"] == "NotFoundError", refused
    assert {**refused, "message": refused["message"].replace(mine["id"], "<id>")} == {
        **missing, "message": missing["message"].replace(nobody, "<id>")
    }

    # A bad month on the contract's field is an error naming it.
    message = await refused_query(customer, RESERVATIONS, {"c": str(tiered.id), "month": "2026-13"}, "contract")
    assert "'2026-13'" in message, message

    assert await on_call_traces(ctx) == before
    still = (await customer.data(RESERVATIONS, {"c": str(tiered.id), "month": None}))["contract"]["onCallReservations"]
    assert [(r["id"], r["status"], r["amount"]) for r in still] == [
        (today["id"], "RESERVED", "8400.00"), (mine["id"], "RESERVED", "8400.00")
    ]

"""GraphQL: customers and contracts, their refusals, and the entitlement periods a contract gives."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from api.models import StaffRole, UserKind
from api.services import identity, ledger
from tests.conftest import ADMIN, unique
from tests.graphql.helpers import PERIOD_FIELDS, consume, entitlements

TODAY = date(2026, 3, 10)

CREATE_CUSTOMER = """
mutation CreateCustomer($input: CreateCustomerInput!) {
  createCustomer(input: $input) {
    __typename
    ... on CreateCustomerSuccess { customer { id code name email country } }
    ... on UserError { code message field }
  }
}
"""

CONTRACT_FIELDS = """
    id reference effectiveDate endDate monthlyFee currency clientManager { name email }
    customAllowances { bucket allowance }
    customer { id code name }
    plan {
      code name programCode sla
      buckets { code name unit ledgerUnit allowance period anchor rollover increment }
    }
"""

CREATE_CONTRACT = f"""
mutation CreateContract($input: CreateContractInput!) {{
  createContract(input: $input) {{
    __typename
    ... on CreateContractSuccess {{ contract {{ {CONTRACT_FIELDS} }} }}
    ... on UserError {{ code message field }}
  }}
}}
"""

CONTRACTS_OF = """
query ContractsOf($customerId: ID) { contracts(customerId: $customerId) { edges { node { id reference } } } }
"""

CUSTOMERS = "query($s: String) { customers(search: $s, first: 200) { edges { node { code name } } } }"


def days_from_today(day: str) -> int:
    return (date.fromisoformat(day) - TODAY).days


async def customer_codes(gql, search: str) -> set[str]:  # type: ignore[no-untyped-def]
    return {e["node"]["code"] for e in (await gql(CUSTOMERS, {"s": search}))["customers"]["edges"]}


async def contracts_of(gql, customer_id: object) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    return [e["node"] for e in (await gql(CONTRACTS_OF, {"customerId": str(customer_id)}))["contracts"]["edges"]]


# ---- createCustomer ----------------------------------------------------------------------------


async def test_create_customer(gql):
    code = unique("acme")
    payload = {"code": code, "name": "  Acme A/S ", "email": "ops@acme.dk", "country": "DK"}
    result = (await gql(CREATE_CUSTOMER, {"input": payload}))["createCustomer"]
    assert result["__typename"] == "CreateCustomerSuccess"
    customer = result["customer"]
    assert uuid.UUID(customer["id"])
    assert customer == {"id": customer["id"], "code": code, "name": "Acme A/S", "email": "ops@acme.dk", "country": "DK"}

    found = await gql("query($id: ID!) { customer(id: $id) { id code name } }", {"id": customer["id"]})
    assert found["customer"] == {"id": customer["id"], "code": code, "name": "Acme A/S"}


async def test_create_customer_with_a_taken_code_is_a_conflict(gql):
    code = unique("taken")
    first = (await gql(CREATE_CUSTOMER, {"input": {"code": code, "name": "First"}}))["createCustomer"]
    assert first["__typename"] == "CreateCustomerSuccess"

    again = (await gql(CREATE_CUSTOMER, {"input": {"code": code, "name": "Second"}}))["createCustomer"]
    assert again == {
        "__typename": "ConflictError",
        "code": "ALREADY_EXISTS",
        "message": f"a customer with code {code!r} already exists",
        "field": "code",
    }
    data = await gql(CUSTOMERS, {"s": code})
    assert [e["node"]["name"] for e in data["customers"]["edges"] if e["node"]["code"] == code] == ["First"]


@pytest.mark.parametrize(
    ("fields", "field", "text"),
    [
        ({"code": "Not A Code"}, "code", "must be 1-63 lower-case letters"),
        ({"code": "-leading-dash"}, "code", "must be 1-63 lower-case letters"),
        ({"code": "trailing-newline\n"}, "code", "must be 1-63 lower-case letters"),
        ({"name": "   "}, "name", "name must not be empty"),
        ({"name": "n" * 201}, "name", "name must be at most 200 characters"),
        ({"email": "not-an-address"}, "email", "is not an e-mail address"),
        ({"email": "ops@example.com\n"}, "email", "is not an e-mail address"),
        ({"email": "a@" + "b" * 250 + ".com"}, "email", "is not an e-mail address"),
        ({"country": "dk"}, "country", "ISO 3166 alpha-2"),
        ({"country": "DNK"}, "country", "ISO 3166 alpha-2"),
    ],
)
async def test_create_customer_refuses_bad_input(gql, fields, field, text):
    code = unique("bad")
    payload = {"code": code, "name": "Bad Input Ltd", **fields}
    result = (await gql(CREATE_CUSTOMER, {"input": payload}))["createCustomer"]
    assert result["__typename"] == "ValidationError"
    assert result["code"] == "INVALID"
    assert result["field"] == field
    assert text in result["message"]
    # Nothing was created: neither the unique code nor the malformed one (searched by its letters alone).
    assert code not in await customer_codes(gql, code)
    assert payload["code"] not in await customer_codes(gql, "".join(filter(str.isalnum, payload["code"]))[:20])


# ---- createContract ----------------------------------------------------------------------------


def contract_input(customer_id: object, **fields: Any) -> dict[str, Any]:
    return {
        "reference": fields.pop("reference", unique("ORD")),
        "customerId": str(customer_id),
        "programCode": fields.pop("programCode", "advisory-assure"),
        "planCode": fields.pop("planCode", "small"),
        "effectiveDate": fields.pop("effectiveDate", "2026-02-15"),
        "endDate": fields.pop("endDate", "2027-02-14"),
        "monthlyFee": fields.pop("monthlyFee", "1200.50"),
        "currency": fields.pop("currency", "EUR"),
        **fields,
    }


async def create_contract(gql, customer_id: object, **fields: Any) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return (await gql(CREATE_CONTRACT, {"input": contract_input(customer_id, **fields)}))["createContract"]


async def make_staff(ctx, role: StaffRole, name: str = "Carla Manager"):  # type: ignore[no-untyped-def]
    return await identity.create_user(
        ctx,
        ADMIN,
        identity.NewUser(
            email=f"{unique('staff')}@provider.example", name=name, password="a long enough password",
            kind=UserKind.STAFF, staff_role=role,
        ),
    )


async def test_create_contract(gql, ctx, shipped_programs, make_customer):
    customer = await make_customer(name="Contract Holder")
    manager = await make_staff(ctx, StaffRole.CLIENT_MANAGER)
    reference = unique("ORD")
    # The e-mail address is matched case-insensitively to the staff user.
    result = await create_contract(gql, customer.id, reference=reference, clientManagerEmail=manager.email.upper())
    assert result["__typename"] == "CreateContractSuccess"
    contract = result["contract"]
    assert uuid.UUID(contract["id"])
    assert {k: v for k, v in contract.items() if k not in ("id", "customer", "plan")} == {
        "reference": reference,
        "effectiveDate": "2026-02-15",
        "endDate": "2027-02-14",
        "monthlyFee": "1200.50",
        "currency": "EUR",
        "clientManager": {"name": "Carla Manager", "email": manager.email},
        "customAllowances": [],
    }
    assert contract["customer"] == {"id": str(customer.id), "code": customer.code, "name": "Contract Holder"}
    assert contract["plan"] == {
        "code": "small",
        "name": "Assure Small",
        "programCode": "advisory-assure",
        "sla": False,
        "buckets": [
            {
                "code": "activities",
                "name": "Small activities",
                "unit": "ACTIVITIES",
                "ledgerUnit": "ACTIVITIES",
                "allowance": 5,
                "period": "QUARTER",
                "anchor": "CONTRACT",
                "rollover": "none",
                "increment": 1,
            }
        ],
    }

    # Read back from the database: the same contract, listed for its customer.
    data = await gql(f"query($id: ID!) {{ contract(id: $id) {{ {CONTRACT_FIELDS} }} }}", {"id": contract["id"]})
    assert data["contract"] == contract
    assert await contracts_of(gql, customer.id) == [{"id": contract["id"], "reference": reference}]


async def test_create_contract_for_an_unknown_customer(gql, shipped_programs):
    missing = uuid.uuid4()
    result = await create_contract(gql, missing)
    assert result == {
        "__typename": "NotFoundError",
        "code": "NOT_FOUND",
        "message": f"customer {missing} does not exist",
        "field": "customerId",
    }
    assert await contracts_of(gql, missing) == []


async def test_create_contract_with_a_malformed_customer_id(gql, shipped_programs):
    reference = unique("ORD")
    result = await create_contract(gql, "not-a-uuid", reference=reference)
    assert result["__typename"] == "NotFoundError"
    assert result["code"] == "NOT_FOUND"
    assert result["field"] == "customerId"
    assert "not-a-uuid" in result["message"]
    found = await gql("query($r: String) { contracts(reference: $r) { edges { node { reference } } } }", {"r": reference})
    assert found["contracts"]["edges"] == []


@pytest.mark.parametrize(
    ("fields", "typename", "code", "field", "text"),
    [
        ({"planCode": "gold"}, "NotFoundError", "NOT_FOUND", "planCode", "plan advisory-assure/gold does not exist"),
        ({"programCode": "no-such-program"}, "NotFoundError", "NOT_FOUND", "planCode", "no-such-program/small"),
        (
            {"effectiveDate": "2026-02-15", "endDate": "2026-02-14"},
            "ValidationError", "INVALID", "endDate",
            "end date 2026-02-14 is before the effective date 2026-02-15",
        ),
        ({"monthlyFee": "-1.00"}, "ValidationError", "INVALID", "monthlyFee", "must be zero or more"),
        ({"monthlyFee": "10.005"}, "ValidationError", "INVALID", "monthlyFee", "at most 2 decimals"),
        ({"monthlyFee": "NaN"}, "ValidationError", "INVALID", "monthlyFee", "monthly fee NaN must be"),
        ({"monthlyFee": "Infinity"}, "ValidationError", "INVALID", "monthlyFee", "monthly fee Infinity must be"),
        ({"monthlyFee": "1000000000000.00"}, "ValidationError", "INVALID", "monthlyFee", "below 1,000,000,000,000"),
        ({"monthlyFee": "1e30"}, "ValidationError", "INVALID", "monthlyFee", "below 1,000,000,000,000"),
        ({"clientManagerEmail": "nobody"}, "ValidationError", "INVALID", "clientManagerEmail", "is not an e-mail"),
        (
            {"clientManagerEmail": "cm@" + "x" * 260 + ".example"},
            "ValidationError", "INVALID", "clientManagerEmail", "is not an e-mail",
        ),
        ({"currency": "eur"}, "ValidationError", "INVALID", "currency", "ISO 4217"),
        ({"currency": "EURO"}, "ValidationError", "INVALID", "currency", "ISO 4217"),
        ({"reference": "has spaces"}, "ValidationError", "INVALID", "reference", "reference 'has spaces'"),
        (
            {"planCode": "custom"},
            "ValidationError", "INVALID", "customAllowances",
            "leaves the allowance of activities to the contract",
        ),
        (
            {"customAllowances": [{"bucket": "activities", "allowance": 7}]},
            "ValidationError", "INVALID", "customAllowances",
            "bucket 'activities' has a fixed allowance in plan 'small'",
        ),
        (
            {"planCode": "custom", "customAllowances": [{"bucket": "hours", "allowance": 7}]},
            "ValidationError", "INVALID", "customAllowances",
            "plan 'custom' has no bucket 'hours' (it has: activities)",
        ),
        (
            {"planCode": "custom", "customAllowances": [{"bucket": "activities", "allowance": 0}]},
            "ValidationError", "INVALID", "customAllowances",
            "must be a positive multiple of 1 activities",
        ),
        (
            {
                "planCode": "custom",
                "customAllowances": [{"bucket": "activities", "allowance": 3}, {"bucket": "activities", "allowance": 4}],
            },
            "ValidationError", "INVALID", "customAllowances",
            "bucket 'activities' is given twice",
        ),
    ],
)
async def test_create_contract_refusals_write_nothing(gql, make_customer, fields, typename, code, field, text):
    # Every refusal is a typed error, never a database error: the API answers without "errors".
    customer = await make_customer()
    result = await create_contract(gql, customer.id, **fields)
    assert result["__typename"] == typename
    assert result["code"] == code
    assert result["field"] == field
    assert text in result["message"], result["message"]
    assert await contracts_of(gql, customer.id) == []


async def test_the_client_manager_must_be_an_active_client_manager_or_admin(gql, ctx, make_customer):
    customer = await make_customer()
    admin = await make_staff(ctx, StaffRole.ADMIN, name="Ada Admin")
    engineer = await make_staff(ctx, StaffRole.SUPPORT_ENGINEER, name="Sam Support")
    customer_user = await identity.create_user(
        ctx, ADMIN,
        identity.NewUser(email=f"{unique('cust')}@customer.example", name="A Customer", password="a long enough password",
                         kind=UserKind.CUSTOMER, customer_id=customer.id),
    )
    for email in (engineer.email, customer_user.email, f"{unique('nobody')}@provider.example"):
        result = await create_contract(gql, customer.id, clientManagerEmail=email)
        assert result == {
            "__typename": "ValidationError",
            "code": "INVALID",
            "message": f"no active client manager has the e-mail address {email}",
            "field": "clientManagerEmail",
        }
    assert await contracts_of(gql, customer.id) == []

    result = await create_contract(gql, customer.id, clientManagerEmail=admin.email)
    assert result["__typename"] == "CreateContractSuccess"
    assert result["contract"]["clientManager"] == {"name": "Ada Admin", "email": admin.email}
    without = await create_contract(gql, customer.id)
    assert without["contract"]["clientManager"] is None


async def test_create_contract_with_a_taken_reference_is_a_conflict(gql, make_customer, make_contract):
    existing = await make_contract()
    other = await make_customer()
    result = await create_contract(gql, other.id, reference=existing.reference)
    assert result == {
        "__typename": "ConflictError",
        "code": "ALREADY_EXISTS",
        "message": f"a contract with reference {existing.reference!r} already exists",
        "field": "reference",
    }
    assert await contracts_of(gql, other.id) == []
    assert [c["id"] for c in await contracts_of(gql, existing.customer_id)] == [str(existing.id)]


async def test_custom_plan_takes_its_allowance_from_the_contract(gql, make_customer):
    customer = await make_customer()
    result = await create_contract(
        gql, customer.id, planCode="custom", customAllowances=[{"bucket": "activities", "allowance": 8}]
    )
    assert result["__typename"] == "CreateContractSuccess"
    contract = result["contract"]
    assert contract["customAllowances"] == [{"bucket": "activities", "allowance": 8}]
    [bucket] = contract["plan"]["buckets"]
    assert bucket["allowance"] is None  # set per contract

    [period] = await entitlements(gql, contract["id"], "2026-03-10")
    assert (period["allowance"], period["consumed"], period["remaining"]) == (8, 0, 8)
    consumed = await consume(gql, contract["id"], 8)
    assert consumed["__typename"] == "LedgerEntrySuccess"
    assert (consumed["period"]["allowance"], consumed["period"]["remaining"]) == (8, 0)
    [period] = await entitlements(gql, contract["id"], "2026-03-10")
    assert (period["allowance"], period["consumed"], period["remaining"]) == (8, 8, 0)


# ---- reading contracts -------------------------------------------------------------------------


async def test_contract_lookup(gql, make_contract):
    contract = await make_contract()
    data = await gql(
        "query($id: ID!) { contract(id: $id) { id reference customer { id } } }", {"id": str(contract.id)}
    )
    assert data["contract"] == {
        "id": str(contract.id), "reference": contract.reference, "customer": {"id": str(contract.customer_id)}
    }
    for missing in (str(uuid.uuid4()), "garbage"):
        assert (await gql("query($id: ID!) { contract(id: $id) { id } }", {"id": missing}))["contract"] is None
    assert await contracts_of(gql, "garbage") == []


async def test_contracts_are_listed_by_reference(gql, make_customer, make_contract):
    customer = await make_customer()
    prefix = unique("REF")
    second = await make_contract(customer=customer, reference=f"{prefix}-b")
    first = await make_contract(customer=customer, reference=f"{prefix}-a")
    assert await contracts_of(gql, customer.id) == [
        {"id": str(first.id), "reference": first.reference},
        {"id": str(second.id), "reference": second.reference},
    ]
    by_prefix = "query($r: String) { contracts(reference: $r) { edges { node { id } } } }"
    listed = [e["node"]["id"] for e in (await gql(by_prefix, {"r": prefix}))["contracts"]["edges"]]
    assert listed == [str(first.id), str(second.id)]


async def test_is_active(gql, make_contract):
    contract = await make_contract()  # 2026-02-15 .. 2027-02-14
    data = await gql(
        """query($id: ID!) { contract(id: $id) {
             today: isActive
             before: isActive(on: "2026-02-14") first: isActive(on: "2026-02-15")
             last: isActive(on: "2027-02-14") after: isActive(on: "2027-02-15")
        } }""",
        {"id": str(contract.id)},
    )
    assert data["contract"] == {"today": True, "before": False, "first": True, "last": True, "after": False}


async def test_entitlements_by_day(gql, make_contract, ctx):
    contract = await make_contract()  # Assure Small: 5 a quarter from 2026-02-15
    await ledger.consume_entitlement(
        ctx, ADMIN, ledger.Consumption(contract.id, "activities", Decimal(2), on=date(2026, 3, 1))
    )

    [today] = await entitlements(gql, contract.id)
    [first] = await entitlements(gql, contract.id, "2026-05-14")
    assert today == first == {
        "bucket": "activities",
        "bucketName": "Small activities",
        "unit": "ACTIVITIES",
        "ledgerUnit": "ACTIVITIES",
        "periodStart": "2026-02-15",
        "periodEnd": "2026-05-14",
        "allowance": 5,
        "consumed": 2,
        "remaining": 3,
        "ended": False,
        "expired": 0,
        "expiresInDays": 65,
    }

    [second] = await entitlements(gql, contract.id, "2026-05-15")
    assert second == {
        **first,
        "periodStart": "2026-05-15",
        "periodEnd": "2026-08-14",
        "consumed": 0,
        "remaining": 5,
        "expiresInDays": days_from_today("2026-08-14"),
    }

    assert await entitlements(gql, contract.id, "2026-02-14") == []
    assert await entitlements(gql, contract.id, "2027-02-15") == []


async def test_periods_cover_the_term(gql, make_contract):
    contract = await make_contract()
    data = await gql(
        f'query($id: ID!) {{ contract(id: $id) {{ periods(bucket: "activities") {{ {PERIOD_FIELDS} }} }} }}',
        {"id": str(contract.id)},
    )
    periods = data["contract"]["periods"]
    assert [(p["periodStart"], p["periodEnd"]) for p in periods] == [
        ("2026-02-15", "2026-05-14"),
        ("2026-05-15", "2026-08-14"),
        ("2026-08-15", "2026-11-14"),
        ("2026-11-15", "2027-02-14"),
    ]
    assert all((p["allowance"], p["consumed"], p["remaining"], p["ended"], p["expired"]) == (5, 0, 5, False, 0) for p in periods)
    assert [p["expiresInDays"] for p in periods] == [days_from_today(p["periodEnd"]) for p in periods]


async def test_periods_of_an_unknown_bucket_is_an_error(gql, make_contract):
    contract = await make_contract()
    body = await gql(
        'query($id: ID!) { contract(id: $id) { periods(bucket: "hours") { periodStart } } }',
        {"id": str(contract.id)},
        allow_errors=True,
    )
    assert body["data"] == {"contract": None}
    [error] = body["errors"]
    assert error["message"] == "plan 'small' has no bucket 'hours'"
    assert error["path"] == ["contract", "periods"]


async def test_an_ended_period_shows_what_expired(gql, make_contract, ctx):
    # Quarters from 2025-10-01: the first ended on 2025-12-31, before today (2026-03-10).
    contract = await make_contract(effective=date(2025, 10, 1))
    await ledger.consume_entitlement(
        ctx, ADMIN, ledger.Consumption(contract.id, "activities", Decimal(2), on=date(2026, 3, 1))
    )
    data = await gql(
        f'query($id: ID!) {{ contract(id: $id) {{ periods(bucket: "activities") {{ {PERIOD_FIELDS} }} }} }}',
        {"id": str(contract.id)},
    )
    periods = data["contract"]["periods"]
    assert len(periods) == 4
    ended, current = periods[0], periods[1]
    assert ended == {
        "bucket": "activities",
        "bucketName": "Small activities",
        "unit": "ACTIVITIES",
        "ledgerUnit": "ACTIVITIES",
        "periodStart": "2025-10-01",
        "periodEnd": "2025-12-31",
        "allowance": 5,
        "consumed": 0,
        "remaining": 5,
        "ended": True,
        "expired": 5,
        "expiresInDays": -69,
    }
    assert (current["periodStart"], current["periodEnd"]) == ("2026-01-01", "2026-03-31")
    assert (current["consumed"], current["remaining"], current["ended"], current["expired"]) == (2, 3, False, 0)
    assert current["expiresInDays"] == 21

    [seen] = await entitlements(gql, contract.id, "2025-11-15")
    assert seen == ended


async def test_calendar_anchored_hours_plan(gql, make_contract):
    # Premium 16: 16 hours a calendar quarter, booked in quarter hours; effective mid-quarter.
    contract = await make_contract(program="premium-availability", plan="premium-16", effective=date(2026, 2, 15))
    data = await gql(
        f"""query($id: ID!) {{ contract(id: $id) {{
              plan {{ buckets {{ code unit ledgerUnit allowance period anchor increment }} }}
              periods(bucket: "expert-hours") {{ {PERIOD_FIELDS} }}
        }} }}""",
        {"id": str(contract.id)},
    )
    assert data["contract"]["plan"]["buckets"] == [
        {
            "code": "expert-hours",
            "unit": "HOURS",
            "ledgerUnit": "MINUTES",
            "allowance": 960,
            "period": "QUARTER",
            "anchor": "CALENDAR",
            "increment": 15,
        }
    ]
    periods = data["contract"]["periods"]
    assert [(p["periodStart"], p["periodEnd"]) for p in periods] == [
        ("2026-02-15", "2026-03-31"),  # clipped to the effective date
        ("2026-04-01", "2026-06-30"),
        ("2026-07-01", "2026-09-30"),
        ("2026-10-01", "2026-12-31"),
        ("2027-01-01", "2027-02-14"),  # clipped to the end date
    ]
    assert {p["allowance"] for p in periods} == {960}

    [today] = await entitlements(gql, contract.id)
    assert today == {
        "bucket": "expert-hours",
        "bucketName": today["bucketName"],
        "unit": "HOURS",
        "ledgerUnit": "MINUTES",
        "periodStart": "2026-02-15",
        "periodEnd": "2026-03-31",
        "allowance": 960,
        "consumed": 0,
        "remaining": 960,
        "ended": False,
        "expired": 0,
        "expiresInDays": 21,
    }
    assert today["bucketName"]
    [april] = await entitlements(gql, contract.id, "2026-04-01")
    assert (april["periodStart"], april["periodEnd"], april["remaining"]) == ("2026-04-01", "2026-06-30", 960)


PAGED_CONTRACTS = """
query($r: String, $first: Int, $after: String) {
  contracts(reference: $r, first: $first, after: $after) {
    edges { cursor node { reference } } pageInfo { hasNextPage endCursor }
  }
}
"""


async def test_contracts_and_customers_are_paged_by_keyset(gql, make_customer, make_contract):
    prefix = unique("KEYSET")
    customer = await make_customer(code=f"{prefix.lower()}-c")
    made = sorted(f"{prefix}-{n}" for n in range(5))
    for reference in reversed(made):
        await make_contract(customer=customer, reference=reference)
    seen, after = [], None
    while True:
        page = (await gql(PAGED_CONTRACTS, {"r": prefix, "first": 2, "after": after}))["contracts"]
        assert len(page["edges"]) <= 2
        seen += [edge["node"]["reference"] for edge in page["edges"]]
        assert page["pageInfo"]["endCursor"] == page["edges"][-1]["cursor"]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == made  # every one once, by reference

    for bad in ({"first": 0}, {"first": 201}, {"after": "bm90IGEgY3Vyc29y"}, {"r": "a\x00b"}):
        result = await gql(PAGED_CONTRACTS, {"r": prefix, **bad}, allow_errors=True)
        assert result["data"] is None, bad
        assert result["errors"][0]["extensions"]["code"] == "INVALID", bad

    customers = await gql(
        "query($s: String) { customers(search: $s, first: 1) { edges { node { id } } pageInfo { hasNextPage } } }",
        {"s": prefix.lower()},
    )
    assert customers["customers"] == {"edges": [{"node": {"id": str(customer.id)}}], "pageInfo": {"hasNextPage": False}}

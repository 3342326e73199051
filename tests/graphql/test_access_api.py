"""GraphQL: partner links and their permissions, the correspondent, checkFiling for integration support,
out-of-scope answers that leak nothing, foreign objects answered like nonexistent ones, and the
out-of-scope lists with their sources, each through real credentials."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest

from api.config import PROJECT_ROOT
from api.models import StaffRole, TokenAccess, TokenScope, UserKind
from api.programs.loader import read_program_file
from api.services import ledger, parties, policy
from tests.conftest import ADMIN, NOW, unique
from tests.graphql.conftest import Caller, Connect, table_counts

TODAY = NOW.date()
REFUSAL = read_program_file(PROJECT_ROOT / "programs" / "partner-support.toml").program.partners.integration_support_refusal.strip()
INTEGRATION = "integration-support"

LINK = """
mutation($input: LinkPartnerInput!) {
  linkPartner(input: $input) {
    __typename
    ... on LinkPartnerSuccess { partnerId customerId managed productionAccess canFileTickets canViewEntitlements canBookActivities }
    ... on UserError { code message field }
  }
}
"""
CHECK = """
query($c: ID!, $t: String!, $on: Date) { checkFiling(customerId: $c, ticketType: $t, on: $on) { allowed code reason contractId } }
"""
SCOPE = "query($c: ID!, $on: Date) { outOfScope(customerId: $c, on: $on) { code text list source sourceName programCode } }"
CORRESPONDENT = "query($c: ID!) { customer(id: $c) { code correspondent { kind name email partnerId } } }"


async def make_partner(ctx, certified_until: date | None = None, name: str = "Northwind"):  # type: ignore[no-untyped-def]
    code = unique("partner")
    return await parties.create_partner(
        ctx, ADMIN, parties.NewPartner(code=code, name=name, email=f"{code}@partner.example", certified_until_date=certified_until)
    )


async def link(ctx, partner, customer, **flags: bool):  # type: ignore[no-untyped-def]
    values = {"managed": True, "production_access": False, **flags}
    return await parties.link_partner(ctx, ADMIN, partner_id=partner.id, customer_id=customer.id, **values)


async def support_contract(make_contract, customer, plan: str = "enterprise", **fields: Any):  # type: ignore[no-untyped-def]
    return await make_contract(
        program="partner-support", plan=plan, customer=customer, custom_allowances={"support-hours": 600}, **fields
    )


async def partner_caller(connect: Connect, partner) -> Caller:  # type: ignore[no-untyped-def]
    return (await connect.token(TokenScope.PARTNER, TokenAccess.READ, partner_id=partner.id))[0]


async def customer_caller(connect: Connect, customer) -> Caller:  # type: ignore[no-untyped-def]
    return (await connect.user(UserKind.CUSTOMER, customer_id=customer.id))[0]


async def check(caller: Caller, customer_id: object, ticket_type: str = INTEGRATION, on: str | None = None) -> dict[str, Any]:
    return (await caller.data(CHECK, {"c": str(customer_id), "t": ticket_type, "on": on}))["checkFiling"]


# ---- 1. linkPartner ----------------------------------------------------------------------------


async def test_link_partner_with_permissions(gql, ctx, make_customer):
    customer, partner = await make_customer(), await make_partner(ctx)
    ids = {"partnerId": str(partner.id), "customerId": str(customer.id)}
    defaults = (await gql(LINK, {"input": ids}))["linkPartner"]
    assert defaults == {
        "__typename": "LinkPartnerSuccess", **ids, "managed": True, "productionAccess": False,
        "canFileTickets": True, "canViewEntitlements": True, "canBookActivities": False,
    }
    flags = {"managed": False, "productionAccess": True, "canFileTickets": False, "canViewEntitlements": False,
             "canBookActivities": True}
    updated = (await gql(LINK, {"input": {**ids, **flags}}))["linkPartner"]
    assert updated == {"__typename": "LinkPartnerSuccess", **ids, **flags}


async def test_link_partner_refusals_write_nothing(gql, ctx, connect, make_customer):
    customer, partner = await make_customer(), await make_partner(ctx)
    manager, _, _ = await connect.user(UserKind.STAFF, staff_role=StaffRole.CLIENT_MANAGER, name="Carl")
    partner_rw, token, _ = await connect.token(TokenScope.PARTNER, TokenAccess.READ_WRITE, partner_id=partner.id)
    customer_rw, _, _ = await connect.token(TokenScope.CUSTOMER, TokenAccess.READ_WRITE, customer_id=customer.id)
    missing = str(uuid.uuid4())
    before = await table_counts(ctx)
    ids = {"partnerId": str(partner.id), "customerId": str(customer.id), "productionAccess": True}
    for payload, expected in (
        ({**ids, "partnerId": missing}, ("NotFoundError", "NOT_FOUND", "partnerId", f"partner {missing} does not exist")),
        ({**ids, "customerId": missing}, ("NotFoundError", "NOT_FOUND", "customerId", f"customer {missing} does not exist")),
        ({**ids, "customerId": "garbage"}, ("NotFoundError", "NOT_FOUND", "customerId", "customer garbage does not exist")),
    ):
        result = (await gql(LINK, {"input": payload}))["linkPartner"]
        assert (result["__typename"], result["code"], result["field"], result["message"]) == expected
    for caller in (manager, partner_rw, customer_rw):
        result = (await caller.data(LINK, {"input": ids}))["linkPartner"]
        assert (result["__typename"], result["code"]) == ("PermissionDeniedError", "PERMISSION_DENIED")
        assert result["message"].endswith(" may not link partners to customers")
    assert await table_counts(ctx) == before


async def test_can_view_entitlements_decides_what_a_partner_sees(ctx, connect, make_customer, make_contract):
    customer, partner = await make_customer(), await make_partner(ctx)
    contract = await make_contract(customer=customer)
    caller = await partner_caller(connect, partner)
    query = "query($id: ID!) { contract(id: $id) { id entitlements { remaining } } }"
    await link(ctx, partner, customer, can_view_entitlements=False)
    assert (await caller.data(query, {"id": str(contract.id)}))["contract"] is None
    assert (await caller.data("{ customers { edges { node { id } } } }"))["customers"]["edges"] == [{"node": {"id": str(customer.id)}}]
    await link(ctx, partner, customer, can_view_entitlements=True)
    assert (await caller.data(query, {"id": str(contract.id)}))["contract"] == {
        "id": str(contract.id), "entitlements": [{"remaining": 5}]
    }


# ---- 2. the correspondent ----------------------------------------------------------------------


async def test_the_correspondent_switches_to_the_managing_partner(gql, ctx, connect, make_customer):
    customer = await make_customer(name="Globex", email="support@globex.example")
    direct = {"kind": "CUSTOMER", "name": "Globex", "email": "support@globex.example", "partnerId": None}
    assert (await gql(CORRESPONDENT, {"c": str(customer.id)}))["customer"]["correspondent"] == direct

    works_with = await make_partner(ctx, name="Helper")
    await gql(LINK, {"input": {"partnerId": str(works_with.id), "customerId": str(customer.id), "managed": False}})
    assert (await gql(CORRESPONDENT, {"c": str(customer.id)}))["customer"]["correspondent"] == direct

    manager = await make_partner(ctx, name="Northwind")
    await gql(LINK, {"input": {"partnerId": str(manager.id), "customerId": str(customer.id)}})
    managed = {"kind": "PARTNER", "name": "Northwind", "email": manager.email, "partnerId": str(manager.id)}
    assert (await gql(CORRESPONDENT, {"c": str(customer.id)}))["customer"]["correspondent"] == managed
    # The customer's own users and the partner see the same answer: replies go to the partner.
    for caller in (await customer_caller(connect, customer), await partner_caller(connect, manager)):
        assert (await caller.data(CORRESPONDENT, {"c": str(customer.id)}))["customer"]["correspondent"] == managed


# ---- 3. checkFiling: integration support --------------------------------------------------------


@pytest.mark.parametrize("plan", ["enterprise", "premium"])
async def test_check_filing_for_integration_support(ctx, connect, make_customer, make_contract, plan):
    customer = await make_customer()
    contract = await support_contract(make_contract, customer, plan)
    allowed = {"allowed": True, "code": None, "reason": None, "contractId": str(contract.id)}

    certified = await make_partner(ctx, TODAY + timedelta(days=365), name="Certified")
    await link(ctx, certified, customer, production_access=True)
    assert await check(await partner_caller(connect, certified), customer.id) == allowed

    until_today = await make_partner(ctx, TODAY, name="Today")
    await link(ctx, until_today, customer, managed=False, production_access=True)
    assert await check(await partner_caller(connect, until_today), customer.id) == allowed

    for partner, production, problem in (
        (await make_partner(ctx, None, name="Uncertified"), True, "Uncertified is not certified"),
        (await make_partner(ctx, TODAY - timedelta(days=1), name="Lapsed"), True,
         f"Lapsed's certification expired on {TODAY - timedelta(days=1)}"),
        (await make_partner(ctx, TODAY + timedelta(days=365), name="Outsider"), False,
         "Outsider has no access to the customer's production account"),
    ):
        await link(ctx, partner, customer, managed=False, production_access=production)
        caller = await partner_caller(connect, partner)
        assert await check(caller, customer.id) == {
            "allowed": False, "code": "PARTNER_NOT_ELIGIBLE", "reason": f"{REFUSAL} ({problem})", "contractId": None,
        }
        assert (await check(caller, customer.id, "question"))["allowed"] is True

    refused = await check(await customer_caller(connect, customer), customer.id)
    assert refused == {
        "allowed": False, "code": "PARTNER_NOT_ELIGIBLE",
        "reason": f"{REFUSAL} (it was requested by the customer, not by a partner)", "contractId": None,
    }

    engineer, _, _ = await connect.user(UserKind.STAFF, staff_role=StaffRole.SUPPORT_ENGINEER)
    assert await check(engineer, customer.id) == allowed
    integrator, _, _ = await connect.token(TokenScope.PROVIDER, TokenAccess.READ)
    assert await check(integrator, customer.id) == allowed


async def test_check_filing_needs_a_contract_in_force_on_the_filing_date(ctx, connect, make_customer, make_contract):
    customer = await make_customer()
    contract = await support_contract(make_contract, customer, effective=date(2026, 2, 15), end=date(2026, 6, 30))
    partner = await make_partner(ctx, date(2026, 5, 31))
    await link(ctx, partner, customer, production_access=True)
    caller = await partner_caller(connect, partner)
    assert (await check(caller, customer.id, on="2026-05-31"))["contractId"] == str(contract.id)
    assert (await check(caller, customer.id, on="2026-06-01"))["code"] == "PARTNER_NOT_ELIGIBLE"  # certification lapsed
    for day in ("2026-02-14", "2026-07-01"):
        assert await check(caller, customer.id, on=day) == {
            "allowed": False, "code": "INVALID", "contractId": None,
            "reason": f"no contract of this customer in force on {day} offers ticket type "
                      "'integration-support' (no contract in force)",
        }


# ---- 4. out of scope: the same answer whether or not the customer exists -----------------------

OUT_OF_SCOPE = {"allowed": False, "code": "OUT_OF_SCOPE", "reason": policy.OUT_OF_SCOPE_MESSAGE, "contractId": None}


async def test_an_unlinked_partner_or_another_customer_is_out_of_scope(ctx, connect, make_customer, make_contract):
    customer = await make_customer()
    await support_contract(make_contract, customer)
    partner = await make_partner(ctx, TODAY + timedelta(days=365))
    await link(ctx, partner, await make_customer(), production_access=True)  # linked to someone else only
    other_customer = await customer_caller(connect, await make_customer())
    for caller in (await partner_caller(connect, partner), other_customer):
        for customer_id in (customer.id, uuid.uuid4()):
            for ticket_type in (INTEGRATION, "question"):
                assert await check(caller, customer_id, ticket_type) == OUT_OF_SCOPE


async def test_a_linked_partner_without_can_file_tickets_is_denied(ctx, connect, make_customer, make_contract):
    customer = await make_customer()
    await support_contract(make_contract, customer)
    partner = await make_partner(ctx, TODAY + timedelta(days=365), name="Northwind")
    await link(ctx, partner, customer, production_access=True, can_file_tickets=False)
    caller, token, _ = await connect.token(TokenScope.PARTNER, TokenAccess.READ, partner_id=partner.id)
    assert await check(caller, customer.id) == {
        "allowed": False, "code": "PERMISSION_DENIED", "contractId": None,
        "reason": f"API token {token.name!r} may not file tickets for this customer: the customer has not allowed it",
    }


# ---- 5. foreign objects answer exactly like nonexistent ones ----------------------------------


async def test_a_customer_sees_foreign_objects_as_nonexistent(ctx, connect, make_contract):
    mine, theirs = await make_contract(), await make_contract()
    queries = {
        "contract": ("query($id: ID!) { contract(id: $id) { id } }", mine.id, theirs.id),
        "customer": ("query($id: ID!) { customer(id: $id) { id } }", mine.customer_id, theirs.customer_id),
        "outOfScope": ("query($id: ID!) { outOfScope(customerId: $id) { code } }", mine.customer_id, theirs.customer_id),
        "contracts": ("query($id: ID) { contracts(customerId: $id) { edges { node { id } } } }", mine.customer_id, theirs.customer_id),
    }
    for caller in (
        await customer_caller(connect, await parties_customer(ctx, mine.customer_id)),
        (await connect.token(TokenScope.CUSTOMER, TokenAccess.READ_WRITE, customer_id=mine.customer_id))[0],
    ):
        for field, (query, own, foreign) in queries.items():
            assert (await caller.data(query, {"id": str(own)}))[field], field  # its own: found
            answers = [await caller.data(query, {"id": str(ident)}) for ident in (foreign, uuid.uuid4())]
            assert answers[0] == answers[1] == {field: {"edges": []} if field == "contracts" else None}, field


async def parties_customer(ctx, customer_id):  # type: ignore[no-untyped-def]
    from api.models import Customer

    async with ctx.db.read() as session:
        return await session.get(Customer, customer_id)


CONSUME = """
mutation($input: ConsumeEntitlementInput!) { consumeEntitlement(input: $input) {
  __typename ... on LedgerEntrySuccess { entry { id } } ... on UserError { code message field } } }
"""
REVERSE = """
mutation($input: ReverseEntryInput!) { reverseEntry(input: $input) {
  __typename ... on LedgerEntrySuccess { entry { id } } ... on UserError { code message field } } }
"""


def without(result: dict[str, Any], ident: object) -> dict[str, Any]:
    return {**result, "message": result["message"].replace(str(ident), "<id>")}


async def test_contract_mutations_on_a_foreign_contract_are_not_found(ctx, connect, make_contract):
    manager, user, _ = await connect.user(UserKind.STAFF, staff_role=StaffRole.CLIENT_MANAGER, name="Carl")
    assigned = await make_contract(client_manager_email=user.email)
    foreign = await make_contract()  # no client manager: not Carl's
    foreign_entry = await ledger.consume_entitlement(ctx, ADMIN, ledger.Consumption(foreign.id, "activities", Decimal(1)))

    own = (await manager.data(CONSUME, {"input": {"contractId": str(assigned.id), "bucket": "activities", "quantity": "1"}}))
    assert own["consumeEntitlement"]["__typename"] == "LedgerEntrySuccess"

    before = await table_counts(ctx)
    answers = []
    for contract_id in (foreign.id, uuid.uuid4()):
        result = (await manager.data(CONSUME, {"input": {"contractId": str(contract_id), "bucket": "activities", "quantity": "1"}}))
        answers.append(without(result["consumeEntitlement"], contract_id))
    assert answers[0] == answers[1] == {
        "__typename": "NotFoundError", "code": "NOT_FOUND", "message": "contract <id> does not exist", "field": "contractId",
    }
    answers = []
    for entry_id in (foreign_entry.entry.id, uuid.uuid4()):
        result = (await manager.data(REVERSE, {"input": {"entryId": str(entry_id), "reason": "undo"}}))
        answers.append(without(result["reverseEntry"], entry_id))
    assert answers[0] == answers[1] == {
        "__typename": "NotFoundError", "code": "NOT_FOUND", "message": "ledger entry <id> does not exist", "field": "entryId",
    }
    read = "query($id: ID!) { contract(id: $id) { id } }"
    assert (await manager.data(read, {"id": str(foreign.id)})) == {"contract": None}
    assert await table_counts(ctx) == before


# ---- 6. outOfScope with sources ----------------------------------------------------------------


def items(source: str, source_name: str, list_name: str, program: str, *codes: str) -> list[tuple[str, ...]]:
    return [(code, list_name, source, source_name, program) for code in codes]


def as_tuples(entries: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    return [(e["code"], e["list"], e["source"], e["sourceName"], e["programCode"]) for e in entries]


ADVISORY = items("program", "Assure Advisory Packages", "out_of_scope", "advisory-assure",
                 "product-support", "production-support", "hands-on-implementation", "other-vendors")
PARTNER_SUPPORT = items(
    "program", "Partner Support Program", "out_of_scope", "partner-support",
    "managed-services", "channel-setup", "platform-customisation", "third-party-developers",
) + items(
    "program", "Partner Support Program", "out_of_support", "partner-support",
    "custom-formulas", "third-party-integrations", "customer-network-performance", "custom-modifications",
)


async def test_out_of_scope_for_an_advisory_and_a_partner_support_customer(gql, make_customer, make_contract):
    advisory = await make_customer()
    await make_contract(customer=advisory)
    entries = (await gql(SCOPE, {"c": str(advisory.id)}))["outOfScope"]
    assert as_tuples(entries) == ADVISORY
    assert entries[1]["text"].startswith("Urgent or production-down problems")

    supported = await make_customer()
    await support_contract(make_contract, supported, "premium")
    assert as_tuples((await gql(SCOPE, {"c": str(supported.id)}))["outOfScope"]) == PARTNER_SUPPORT
    assert (await gql(SCOPE, {"c": str(supported.id), "on": "2026-02-14"}))["outOfScope"] == []


async def test_out_of_scope_names_plan_program_and_partner_program(gql, ctx, make_customer, make_contract):
    from tests.services.test_access import program_with_every_source

    code = unique("every-source")
    loaded = (await gql(
        "mutation($s: String!) { loadProgram(input: {source: $s}) { __typename } }", {"s": program_with_every_source(code)}
    ))["loadProgram"]
    assert loaded == {"__typename": "LoadProgramSuccess"}
    customer = await make_customer()
    await make_contract(program=code, plan="enterprise", customer=customer, custom_allowances={"support-hours": 600})
    entries = as_tuples((await gql(SCOPE, {"c": str(customer.id)}))["outOfScope"])
    assert entries[:2] == items("plan", "Enterprise", "out_of_scope", code, "on-site-visits") + items(
        "plan", "Enterprise", "out_of_support", code, "legacy-versions"
    )
    assert entries[-1] == ("partner-billing", "out_of_scope", "partner_program", "Solution partners", code)
    assert {e[2] for e in entries} == {"plan", "program", "partner_program"}


async def test_a_partner_sees_out_of_scope_before_filing_for_a_linked_customer_only(ctx, connect, make_customer, make_contract):
    customer = await make_customer()
    await support_contract(make_contract, customer)
    partner = await make_partner(ctx)  # not certified, may not file: it still sees what is out of scope
    caller = await partner_caller(connect, partner)
    assert (await caller.data(SCOPE, {"c": str(customer.id)}))["outOfScope"] is None
    assert (await caller.data(SCOPE, {"c": str(uuid.uuid4())}))["outOfScope"] is None
    assert (await caller.data(SCOPE, {"c": "garbage"}))["outOfScope"] is None
    await link(ctx, partner, customer, can_file_tickets=False, can_view_entitlements=False)
    assert as_tuples((await caller.data(SCOPE, {"c": str(customer.id)}))["outOfScope"]) == PARTNER_SUPPORT

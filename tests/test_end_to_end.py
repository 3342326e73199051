"""The issue's done-when, over HTTP: a partner files a ticket for a customer it manages, a support engineer
replies and logs time, and the customer's hours balance goes down by exactly what was deducted, in ledger
entries that link to the ticket.

Every step is a GraphQL request with real credentials; only logging in (the portal's form) is done through
the identity service, which hands back the same session cookie and CSRF token the portal would."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from api.auth import CSRF_HEADER, SESSION_COOKIE
from api.models import LedgerEntry
from api.services import identity
from tests.conftest import unique

PASSWORD = "end to end password, long enough"
ERROR = "__typename ... on UserError { code message field }"


class Session:
    def __init__(self, http: httpx.AsyncClient):
        self.http = http

    async def run(self, document: str, **variables: Any) -> dict[str, Any]:
        response = await self.http.post("/graphql", json={"query": document, "variables": variables})
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body, body["errors"]
        return body["data"]

    async def mutate(self, name: str, input_type: str, success: str, /, **fields: Any) -> dict[str, Any]:
        document = f"mutation($input: {input_type}!) {{ {name}(input: $input) {{ {ERROR} ... on {success} }} }}"
        result = (await self.run(document, input=fields))[name]
        assert result["__typename"].endswith("Success"), result
        return result


@pytest.fixture
async def log_in(settings, database, clock, ctx):  # type: ignore[no-untyped-def]
    from api.app import create_app

    app = create_app(settings, database=database, clock=clock)
    opened: list[httpx.AsyncClient] = []

    async def session(email: str, password: str) -> Session:
        login = await identity.log_in(ctx, email, password)
        http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver", headers={CSRF_HEADER: login.csrf_token}
        )
        http.cookies.set(SESSION_COOKIE, login.session_secret)
        opened.append(http)
        return Session(http)

    yield session
    for http in opened:
        await http.aclose()


async def hours(customer: Session, contract_id: str) -> dict[str, Any]:
    data = await customer.run(
        "query($id: ID!) { contract(id: $id) { entitlements { bucket unit ledgerUnit allowance consumed remaining } } }",
        id=contract_id,
    )
    [bucket] = [p for p in data["contract"]["entitlements"] if p["bucket"] == "support-hours"]
    return bucket


async def test_a_partner_files_an_engineer_replies_and_logs_time_and_the_hours_go_down(
    log_in, admin_login, shipped_programs, ctx
):  # type: ignore[no-untyped-def]
    from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD

    admin = await log_in(ADMIN_EMAIL, ADMIN_PASSWORD)

    # The provider sets up the customer, its managing partner and a partner-support contract with 600 minutes.
    code = unique("e2e")
    customer_id = (await admin.mutate(
        "createCustomer", "CreateCustomerInput", "CreateCustomerSuccess { customer { id } }",
        code=code, name=f"Customer {code}",
    ))["customer"]["id"]
    partner_id = (await admin.mutate(
        "createPartner", "CreatePartnerInput", "CreatePartnerSuccess { partner { id } }",
        code=f"{code}-partner", name=f"Partner {code}", certifiedUntilDate="2027-01-31",
    ))["partner"]["id"]
    await admin.mutate(
        "linkPartner", "LinkPartnerInput", "LinkPartnerSuccess { managed canFileTickets }",
        partnerId=partner_id, customerId=customer_id, managed=True, productionAccess=True, canFileTickets=True,
        canViewEntitlements=True,
    )
    contract_id = (await admin.mutate(
        "createContract", "CreateContractInput", "CreateContractSuccess { contract { id } }",
        reference=unique("E2E"), customerId=customer_id, programCode="partner-support", planCode="enterprise",
        effectiveDate="2026-01-01", endDate="2026-12-31", monthlyFee="500.00", currency="EUR",
        customAllowances=[{"bucket": "support-hours", "allowance": 600}],
    ))["contract"]["id"]
    users = {}
    for who, fields in (
        ("customer", {"kind": "CUSTOMER", "customerId": customer_id}),
        ("partner", {"kind": "PARTNER", "partnerId": partner_id}),
        ("engineer", {"kind": "STAFF", "staffRole": "SUPPORT_ENGINEER"}),
    ):
        email = f"{unique(who)}@e2e.example"
        await admin.mutate(
            "createUser", "CreateUserInput", "CreateUserSuccess { user { id } }",
            email=email, name=f"E2E {who}", password=PASSWORD, **fields,
        )
        users[who] = await log_in(email, PASSWORD)
    customer, partner, engineer = users["customer"], users["partner"], users["engineer"]

    start = await hours(customer, contract_id)
    assert (start["allowance"], start["consumed"], start["remaining"]) == (600, 0, 600)

    # The partner files integration support for the customer it manages.
    filed = await partner.mutate(
        "fileTicket", "FileTicketInput", "FileTicketSuccess { ticket { id status filedByKind viaPartnerId contractId } }",
        customerId=customer_id, ticketType="integration-support", severity="standard",
        subject="Orders from the ERP connector stop at midnight",
        description="The connector stops importing orders after the nightly run.",
        affectedAccount="acme-prod", stepsFollowed="Ran the nightly import with the connector",
        expectedResult="Every order imported",
    )
    ticket = filed["ticket"]
    assert (ticket["status"], ticket["filedByKind"], ticket["viaPartnerId"], ticket["contractId"]) == (
        "new", "partner", partner_id, contract_id,
    )
    assert (await hours(customer, contract_id))["remaining"] == 600  # filing costs nothing

    # The engineer replies: the conversation is open, and costs the plan's 15-minute minimum.
    reply = await engineer.mutate(
        "addComment", "AddCommentInput", "AddCommentSuccess { commentId ticket { status } }",
        ticketId=ticket["id"], body="The connector's token expires at midnight; we are renewing it.",
    )
    assert reply["ticket"]["status"] == "in_progress"
    after_reply = await hours(customer, contract_id)
    assert (after_reply["consumed"], after_reply["remaining"]) == (15, 585)

    # 25 minutes logged: the ticket now owes 25, so 10 more are deducted.
    logged = await engineer.mutate(
        "logTime", "LogTimeInput", "LogTimeSuccess { timeEntryId deductions { id quantity kind contractId } }",
        ticketId=ticket["id"], minutes=25, note="Renewed the connector token and re-ran the import",
    )
    assert [(d["quantity"], d["kind"], d["contractId"]) for d in logged["deductions"]] == [(10, "CONSUME", contract_id)]
    end = await hours(customer, contract_id)
    assert (end["consumed"], end["remaining"]) == (25, 575)
    assert start["remaining"] - end["remaining"] == 25

    # The contract's ledger holds exactly those deductions, and each links to the ticket.
    ledger = await engineer.run(
        "query($id: ID!) { contract(id: $id) { ledger(first: 50) { edges { node { id bucket quantity reason } } } } }",
        id=contract_id,
    )
    entries = [e["node"] for e in ledger["contract"]["ledger"]["edges"] if e["node"]["bucket"] == "support-hours"]
    assert sorted(e["quantity"] for e in entries) == [10, 15]
    assert all(ticket["id"] in e["reason"] for e in entries)
    assert logged["deductions"][0]["id"] in {e["id"] for e in entries}
    async with ctx.db.read() as session:
        links = set(await session.scalars(
            select(LedgerEntry.ticket_id).where(LedgerEntry.id.in_([uuid.UUID(e["id"]) for e in entries]))
        ))
    assert links == {uuid.UUID(ticket["id"])}

    # The customer sees the same over the API: the conversation, the time logged, the deductions.
    seen = await customer.run(
        """query($id: ID!) { ticket(id: $id) {
             comments { body automatic internal }
             timeEntries { id minutes }
             deductions { quantity ticketId timeEntryId } } }""",
        id=ticket["id"],
    )
    seen_ticket = seen["ticket"]
    # The acknowledgement and the reply (the test's clock does not move between them, so in either order).
    assert sorted(c["automatic"] for c in seen_ticket["comments"]) == [False, True]
    assert [t["minutes"] for t in seen_ticket["timeEntries"]] == [25]
    assert sorted((d["quantity"], d["ticketId"], d["timeEntryId"]) for d in seen_ticket["deductions"]) == [
        (10, ticket["id"], logged["timeEntryId"]),
        (15, ticket["id"], None),
    ]

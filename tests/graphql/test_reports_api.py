"""Reports, credits, deliveries and report contacts over HTTP: the demo's Assure Medium report for March 2026
worked by hand (the same figures as tests/services/test_reports.py) field by field in GraphQL and in the CSV
download; the demo's February outage as a service credit; staff deliveries and retry; report contacts."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from api.config import PROJECT_ROOT, Settings
from api.db import Database
from api.jobs.sender import deliver_outbox
from api.migrate import upgrade
from api.models import StaffRole, TokenAccess, TokenScope
from api.services import contracts, identity, outbox, parties, reports
from api.services.context import AppContext, FixedClock
from api.services.demo import load_demo
from tests.conftest import ADMIN, NOW, unique

MEDIUM = "DEMO-ADVISORY-ASSURE-MEDIUM"
PREMIUM = "DEMO-PREMIUM-AVAILABILITY-PREMIUM-16"

REPORT = """
query Report($id: ID!, $month: String!) {
  consumptionReport(contractId: $id, month: $month) {
    contractReference customerName programCode planCode planName provider month monthEnd asOf complete
    consumptionReport currency timezone csvPath ticketsFiled
    buckets {
      bucket name unit ledgerUnit consumedInMonth overageInMonth expiredInMonth
      periods { periodStart periodEnd allowance consumedInMonth consumedToDate remaining expiring expired ended
                overageInMonth overageToDate }
      history { month consumed overage }
    }
    ticketsByType { code count } ticketsBySeverity { code count }
    sla { target met breached medianSeconds p90Seconds }
    activities { requested scheduled delivered cancelled }
    serviceCredit { month minutes downtimeMinutes tierBelow tierDownTo creditPercent impactedPortion fee amount currency }
    onCall { consultantDays amount currency }
    operational { frequency }
  }
}"""


class Demo:
    def __init__(self, ctx: AppContext, clock: FixedClock, http: httpx.AsyncClient):
        self.ctx, self.clock, self.http = ctx, clock, http

    async def contract(self, reference: str):  # type: ignore[no-untyped-def]
        found = (await contracts.page_contracts(self.ctx, ADMIN, reference=reference)).items
        return next(c for c in found if c.reference == reference)

    async def token(self, scope: TokenScope, **target: object) -> dict[str, str]:
        _, secret = await identity.create_token(
            self.ctx, ADMIN, identity.NewToken(unique("reports"), scope, TokenAccess.READ_WRITE, **target)
        )
        return {"Authorization": f"Bearer {secret}"}

    async def query(self, headers: dict[str, str], document: str, **variables: object) -> dict:
        response = await self.http.post("/graphql", json={"query": document, "variables": variables}, headers=headers)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
async def demo(database_factory) -> AsyncIterator[Demo]:  # type: ignore[no-untyped-def]
    """The demo loaded at the tests' NOW (2026-03-10 12:00 UTC) into a database of its own, then April 2026."""
    from api.app import create_app

    url = database_factory.new()
    upgrade(url)
    db = Database(url)
    clock = FixedClock(NOW)
    settings = Settings(database_url=url)
    ctx = AppContext(db=db, settings=settings, clock=clock)
    await load_demo(ctx, PROJECT_ROOT / "programs")
    clock.instant = datetime(2026, 4, 2, 9, tzinfo=UTC)  # March is over
    app = create_app(settings, database=db, clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
        yield Demo(ctx, clock, http)
    await db.dispose()


async def test_the_demo_report_worked_by_hand_over_graphql_and_csv(demo: Demo) -> None:
    contract = await demo.contract(MEDIUM)
    acme = await demo.token(TokenScope.CUSTOMER, customer_id=contract.customer_id)
    body = await demo.query(acme, REPORT, id=str(contract.id), month="2026-03")
    assert "errors" not in body, body
    report = body["data"]["consumptionReport"]
    history = [{"month": f"{y}-{m:02d}-01", "consumed": 5 if (y, m) == (2026, 3) else 0, "overage": 0}
               for y, m in [(2025, n) for n in range(4, 13)] + [(2026, 1), (2026, 2), (2026, 3)]]
    assert report == {
        "contractReference": MEDIUM, "customerName": "Acme Retail", "programCode": "advisory-assure",
        "planCode": "medium", "planName": "Assure Medium", "provider": "Assure Advisory Services",
        "month": "2026-03-01", "monthEnd": "2026-03-31", "asOf": "2026-04-01T00:00:00+00:00", "complete": True,
        "consumptionReport": True, "currency": "EUR", "timezone": "UTC",
        "csvPath": f"/reports/{contract.id}/2026-03.csv", "ticketsFiled": 0,
        "buckets": [{
            "bucket": "activities", "name": "Small activities", "unit": "ACTIVITIES", "ledgerUnit": "ACTIVITIES",
            "consumedInMonth": 5, "overageInMonth": 0, "expiredInMonth": 0,
            "periods": [{
                "periodStart": "2026-02-15", "periodEnd": "2026-05-14", "allowance": 10, "consumedInMonth": 5,
                "consumedToDate": 5, "remaining": 5, "expiring": 5, "expired": 0, "ended": False,
                "overageInMonth": 0, "overageToDate": 0,
            }],
            "history": history,
        }],
        "ticketsByType": [], "ticketsBySeverity": [], "sla": [],
        "activities": {"requested": 2, "scheduled": 1, "delivered": 0, "cancelled": 0},
        "serviceCredit": None, "onCall": None, "operational": [],
    }

    download = await demo.http.get(report["csvPath"], headers=acme)
    assert download.status_code == 200, download.text
    assert download.headers["content-type"].startswith("text/csv")
    assert f'filename="{MEDIUM}-2026-03.csv"' in download.headers["content-disposition"]
    rows = download.text.splitlines()
    assert rows[0] == "section,item,period_start,period_end,measure,value,unit,display"
    for row in (
        "bucket,activities,2026-03-01,2026-03-31,consumed_in_month,5,activities,5 activities",
        "period,activities,2026-02-15,2026-05-14,remaining,5,activities,5 activities",
        "period,activities,2026-02-15,2026-05-14,expiring,5,activities,5 activities",
        "activities,bookings,2026-03-01,2026-03-31,requested,2,activities,",
    ):
        assert row in rows, row
    same = await reports.consumption_report(demo.ctx, ADMIN, contract.id, "2026-03")
    assert download.text == reports.report_csv(same)


async def test_another_customer_gets_null_and_404(demo: Demo) -> None:
    contract, other = await demo.contract(MEDIUM), await demo.contract(PREMIUM)
    stranger = await demo.token(TokenScope.CUSTOMER, customer_id=other.customer_id)
    body = await demo.query(stranger, REPORT, id=str(contract.id), month="2026-03")
    assert body["data"]["consumptionReport"] is None and "errors" not in body
    missing = await demo.query(stranger, REPORT, id=str(uuid.uuid4()), month="2026-03")
    assert missing == body
    for path in (f"/reports/{contract.id}/2026-03.csv", f"/reports/{uuid.uuid4()}/2026-03.csv", "/reports/x/2026-03.csv"):
        response = await demo.http.get(path, headers=stranger)
        assert response.status_code == 404, (path, response.text)
    assert (await demo.http.get(f"/reports/{contract.id}/2026-03.csv")).status_code == 401


@pytest.mark.parametrize(("month", "words"), [("2026-13", "YYYY-MM"), ("March", "YYYY-MM"), ("2026-05", "has not begun"),
                                              ("1999-12", "before")])
async def test_a_bad_month_is_refused_naming_it(demo: Demo, month: str, words: str) -> None:
    contract = await demo.contract(MEDIUM)
    body = await demo.query(await demo.token(TokenScope.PROVIDER), REPORT, id=str(contract.id), month=month)
    assert body["data"]["consumptionReport"] is None
    assert words in body["errors"][0]["message"] and "month" in body["errors"][0]["message"]
    csv = await demo.http.get(f"/reports/{contract.id}/{month}.csv", headers=await demo.token(TokenScope.PROVIDER))
    assert csv.status_code == 400 and words in csv.json()["errors"][0]["message"]


async def test_the_demo_outage_earns_a_credit_in_february(demo: Demo) -> None:
    # The demo records an outage on the 12th of the month before it was loaded (February 2026), 02:00-03:30
    # UTC, half the service: 90 of February's 40,320 minutes, availability 99.777 %: the 10 % tier, on half
    # the EUR 2,500.00 monthly fee: 125.00.
    contract = await demo.contract(PREMIUM)
    hooli = await demo.token(TokenScope.CUSTOMER, customer_id=contract.customer_id)
    credit = (await demo.query(hooli, REPORT, id=str(contract.id), month="2026-02"))["data"]["consumptionReport"][
        "serviceCredit"
    ]
    assert credit == {
        "month": "2026-02-01", "minutes": 40320, "downtimeMinutes": 90, "tierBelow": "99.99", "tierDownTo": "99.0",
        "creditPercent": "10", "impactedPortion": "0.5000", "fee": "2500.00", "amount": "125.00", "currency": "EUR",
    }
    alone = await demo.query(
        hooli, "query($id: ID!) { serviceCredit(contractId: $id, month: \"2026-02\") { amount availabilityPercent } }",
        id=str(contract.id),
    )
    assert alone["data"]["serviceCredit"]["amount"] == "125.00"
    assert alone["data"]["serviceCredit"]["availabilityPercent"].startswith("99.7767")


DELIVERIES = """query($status: DeliveryStatus) {
  deliveries(filter: {status: $status}, first: 50) { edges { node { id kind status attempts lastError subject } } }
  deliveryCounts { status count }
}"""
RETRY = """mutation($id: ID!) { retryDelivery(id: $id) { __typename
  ... on RetryDeliverySuccess { delivery { id status attempts } } ... on UserError { code field message } } }"""


async def test_staff_see_failed_deliveries_and_retry_one(demo: Demo) -> None:
    customer = await parties.create_customer(demo.ctx, ADMIN, parties.NewCustomer(code=unique("mailless"), name="No Mail"))
    async with demo.ctx.db.write() as session:
        await outbox.queue_all(session, demo.ctx, [outbox.Message(
            "notice", customer.id, unique("notice"), "Where to?", "Nobody to write to.",
            outbox.Recipient("customer", "No Mail", None),
        )])
    await deliver_outbox(demo.ctx)
    admin = await demo.token(TokenScope.PROVIDER)
    _, user = None, await identity.create_user(demo.ctx, ADMIN, identity.NewUser(
        email=f"{unique('engineer')}@reports.example", name="Engineer", password="a long enough password",
        kind=identity.UserKind.STAFF, staff_role=StaffRole.SUPPORT_ENGINEER,
    ))
    login = await identity.log_in(demo.ctx, user.email, "a long enough password")
    engineer = {"Cookie": f"entitle_session={login.session_secret}", "X-CSRF-Token": login.csrf_token}

    body = await demo.query(engineer, DELIVERIES, status="FAILED")
    assert "errors" not in body, body
    failed = [e["node"] for e in body["data"]["deliveries"]["edges"] if e["node"]["subject"] == "Where to?"]
    assert failed and failed[0]["status"] == "FAILED" and "address" in failed[0]["lastError"]
    assert {c["status"] for c in body["data"]["deliveryCounts"]} == {"QUEUED", "SENDING", "SENT", "FAILED"}

    # Retrying a message with no address is refused; a sent one is not failed.
    refused = (await demo.query(engineer, RETRY, id=failed[0]["id"]))["data"]["retryDelivery"]
    assert refused["__typename"] == "ValidationError" and refused["field"] == "id"
    sent = (await demo.query(engineer, DELIVERIES, status="SENT"))["data"]["deliveries"]["edges"]
    if sent:
        conflict = (await demo.query(engineer, RETRY, id=sent[0]["node"]["id"]))["data"]["retryDelivery"]
        assert conflict["__typename"] == "ConflictError" and conflict["code"] == "WRONG_STATUS"
    missing = (await demo.query(engineer, RETRY, id=str(uuid.uuid4())))["data"]["retryDelivery"]
    assert missing["__typename"] == "NotFoundError"

    # Customers and integrators do not read deliveries.
    contract = await demo.contract(MEDIUM)
    for caller in (await demo.token(TokenScope.CUSTOMER, customer_id=contract.customer_id), admin):
        denied = await demo.query(caller, DELIVERIES)
        assert denied["data"] is None and denied["errors"], denied


CONTACTS = """mutation($input: SetReportContactsInput!) { setReportContacts(input: $input) { __typename
  ... on SetReportContactsSuccess { customer { id reportContacts } } ... on UserError { code field message } } }"""


async def test_report_contacts_are_set_by_staff_and_read_by_the_customer(demo: Demo) -> None:
    contract = await demo.contract(MEDIUM)
    admin = await demo.token(TokenScope.PROVIDER)
    given = {"customerId": str(contract.customer_id), "emails": [" Finance@Acme-Retail.example ", "it@acme-retail.example",
                                                                  "finance@acme-retail.example"]}
    done = (await demo.query(admin, CONTACTS, input=given))["data"]["setReportContacts"]
    assert done["customer"]["reportContacts"] == ["finance@acme-retail.example", "it@acme-retail.example"]
    acme = await demo.token(TokenScope.CUSTOMER, customer_id=contract.customer_id)
    seen = await demo.query(acme, "query($id: ID!) { customer(id: $id) { reportContacts } }", id=str(contract.customer_id))
    assert seen["data"]["customer"]["reportContacts"] == ["finance@acme-retail.example", "it@acme-retail.example"]

    bad = (await demo.query(admin, CONTACTS, input={**given, "emails": ["not an address"]}))["data"]["setReportContacts"]
    assert bad["__typename"] == "ValidationError" and bad["field"] == "reportContacts"
    too_many = [f"r{i}@acme-retail.example" for i in range(21)]
    bad = (await demo.query(admin, CONTACTS, input={**given, "emails": too_many}))["data"]["setReportContacts"]
    assert bad["__typename"] == "ValidationError"
    denied = (await demo.query(acme, CONTACTS, input=given))["data"]["setReportContacts"]
    assert denied["__typename"] == "PermissionDeniedError"
    unchanged = await demo.query(acme, "query($id: ID!) { customer(id: $id) { reportContacts } }", id=str(contract.customer_id))
    assert unchanged["data"]["customer"]["reportContacts"] == ["finance@acme-retail.example", "it@acme-retail.example"]

"""The bad-input catalogue: malformed inputs to every mutation of the schema, posted over HTTP with an admin's
session, an integrator's token or a customer's token. Each must come back as its typed error naming the field
at fault (in the API's names), with nothing written: the row count of every table in Base.metadata is the same
before and after. On PostgreSQL a NUL character must be refused by the input rules (api/domain/inputs.py)
before it reaches a statement.

Beside the catalogue: a Decimal's text is bounded before it is parsed, calendar windows of the years 1 and 9999
are refused with the field named, and the widest term the rules accept reads back whole (contracts, periods,
the calendar feed)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

import graphql
import httpx
import pytest
from sqlalchemy import func, select

from api.auth import CSRF_HEADER, SESSION_COOKIE
from api.config import Settings
from api.db import Database
from api.graphql.schema import build_schema
from api.models import Base, StaffRole, TokenAccess, TokenScope, UserKind
from api.services import bookings, calendar_feeds, contracts, identity, ledger, parties, tickets
from api.services.context import AppContext, FixedClock
from tests.conftest import ADMIN, NOW, unique
from tests.factories import small_program

NUL, BIDI, ISOLATE, ZERO_WIDTH, JOINER, BOM = "\x00", "\u202e", "\u2066", "\u200b", "\u200d", "\ufeff"
MEGABYTE = "x" * 1_000_000  # a "1 MB" text: under the request body limit, far over every field's
PASSWORD = "bad input password, long enough"


# ---- the world the cases run against ------------------------------------------------------------------


@dataclass
class World:
    ctx: AppContext
    http: httpx.AsyncClient
    headers: dict[str, dict[str, str]]  # caller -> request headers
    ids: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, name: str) -> str:
        return self.ids[name]


@pytest.fixture(scope="module")
async def world(database: Database, database_url: str, shipped_programs: list[str], tmp_path_factory) -> AsyncIterator[World]:  # type: ignore[no-untyped-def]
    from api.app import create_app

    settings = Settings(database_url=database_url, outbox_dir=tmp_path_factory.mktemp("outbox"))
    ctx = AppContext(db=database, settings=settings, clock=FixedClock(NOW))
    customer = await parties.create_customer(ctx, ADMIN, parties.NewCustomer(unique("bad-input"), "Bad Input Ltd"))
    partner = await parties.create_partner(ctx, ADMIN, parties.NewPartner(unique("bad-partner"), "Bad Partner"))
    await parties.link_partner(
        ctx, ADMIN, partner_id=partner.id, customer_id=customer.id, managed=True, production_access=False,
        can_book_activities=True,
    )

    async def contract(program: str, plan: str, **extra: Any):  # type: ignore[no-untyped-def]
        return await contracts.create_contract(ctx, ADMIN, contracts.NewContract(
            reference=unique("BAD"), customer_id=customer.id, program_code=program, plan_code=plan,
            effective_date=date(2026, 1, 1), end_date=date(2026, 12, 31), monthly_fee=Decimal("100.00"),
            currency=extra.pop("currency", "EUR"), **extra,
        ))

    support = await contract("partner-support", "enterprise", custom_allowances={"support-hours": 600})
    assure = await contract("advisory-assure", "custom", custom_allowances={"activities": 1000})
    premium = await contract("premium-availability", "premium-16")
    tiered = await contract("tiered-support", "premium", currency="DKK")
    consumed = await ledger.consume_entitlement(ctx, ADMIN, ledger.Consumption(assure.id, "activities", Decimal(1)))
    ticket = await tickets.open_ticket(ctx, ADMIN, tickets.NewTicket(customer.id, "question", "standard", "A question"))
    booked = await bookings.book_activity(
        ctx, ADMIN, bookings.NewBooking(assure.id, "advisory-call", date(2026, 4, 1), note="a call")
    )
    feed, _ = await calendar_feeds.create_feed(ctx, ADMIN, assure.id, "Activities")

    admin = await identity.create_user(ctx, ADMIN, identity.NewUser(
        email=f"{unique('admin')}@bad-input.example", name="Bad Input Admin", password=PASSWORD,
        kind=UserKind.STAFF, staff_role=StaffRole.ADMIN,
    ))
    login = await identity.log_in(ctx, admin.email, PASSWORD)
    _, provider_secret = await identity.create_token(
        ctx, ADMIN, identity.NewToken(unique("integrator"), TokenScope.PROVIDER, TokenAccess.READ_WRITE)
    )
    api_token, customer_secret = await identity.create_token(ctx, ADMIN, identity.NewToken(
        unique("customer"), TokenScope.CUSTOMER, TokenAccess.READ_WRITE, customer_id=customer.id
    ))

    app = create_app(settings, database=database, clock=FixedClock(NOW))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
        yield World(
            ctx=ctx,
            http=http,
            headers={
                "admin": {CSRF_HEADER: login.csrf_token, "Cookie": f"{SESSION_COOKIE}={login.session_secret}"},
                "provider": {"Authorization": f"Bearer {provider_secret}"},
                "customer": {"Authorization": f"Bearer {customer_secret}"},
            },
            ids={
                "customer": str(customer.id), "partner": str(partner.id), "support": str(support.id),
                "assure": str(assure.id), "premium": str(premium.id), "tiered": str(tiered.id),
                "entry": str(consumed.entry.id), "ticket": str(ticket.id), "booking": str(booked.booking.id),
                "feed": str(feed.id), "token": str(api_token.id),
            },
        )


async def row_counts(ctx: AppContext) -> dict[str, int]:
    """The number of rows of every table the models declare, read in one transaction."""
    async with ctx.db.read() as session:
        return {
            table.name: await session.scalar(select(func.count()).select_from(table))
            for table in Base.metadata.sorted_tables
        }


def _schema() -> graphql.GraphQLSchema:
    return graphql.build_schema(build_schema(Settings()).as_str())


def operation(mutation: str) -> str:
    """The document of a mutation taking `input` (or `id`) as a variable, asking for its typed error."""
    arguments = _schema().mutation_type.fields[mutation].args  # type: ignore[union-attr]
    declared = ", ".join(f"${name}: {argument.type}" for name, argument in arguments.items())
    passed = ", ".join(f"{name}: ${name}" for name in arguments)
    return (
        f"mutation Run({declared}) {{ {mutation}({passed}) {{ __typename ... on UserError {{ code field message }} }} }}"
    )


async def post(world: World, caller: str, query: str, variables: dict[str, Any]) -> httpx.Response:
    # Written by hand with ensure_ascii, so a lone surrogate travels as the JSON escape it is.
    body = json.dumps({"query": query, "variables": variables}, ensure_ascii=True).encode()
    headers = {"Content-Type": "application/json", **world.headers[caller]}
    return await world.http.post("/graphql", content=body, headers=headers)


# ---- the catalogue ------------------------------------------------------------------------------------

Variables = Callable[[World], dict[str, Any]]


@dataclass(frozen=True)
class Case:
    mutation: str
    caller: str  # admin (session), provider (integrator token) or customer (token)
    variables: Variables
    typename: str
    field: str
    what: str

    @property
    def id(self) -> str:
        return f"{self.mutation}-{self.field}-{self.what}"


def case(mutation: str, caller: str, variables: Variables, field: str, what: str, typename: str = "ValidationError") -> Case:
    return Case(mutation, caller, variables, typename, field, what)


def program(**replace: str) -> str:
    source = small_program(unique("bad-program"))
    for old, new in replace.items():
        source = source.replace(old, new)
    return source


def nested_arrays(levels: int) -> str:
    return f'code = "deep"\nname = "Deep"\nprovider = "Tests"\nx = {"[" * levels}1{"]" * levels}\n'


def nested_tables(levels: int) -> str:
    return f'code = "deep"\nname = "Deep"\nprovider = "Tests"\nx = {"{a = " * levels}1{"}" * levels}\n'


def customer_input(**fields: Any) -> Variables:
    return lambda w: {"input": {"code": unique("bad"), "name": "Bad Input Two", **fields}}


def partner_input(**fields: Any) -> Variables:
    return lambda w: {"input": {"code": unique("bad"), "name": "Bad Partner Two", **fields}}


def contract_input(**fields: Any) -> Variables:
    return lambda w: {"input": {
        "reference": unique("BAD-NEW"), "customerId": w["customer"], "programCode": "advisory-assure",
        "planCode": "small", "effectiveDate": "2026-02-01", "endDate": "2027-01-31", "monthlyFee": "10.00",
        "currency": "EUR", **fields,
    }}


def consume_input(**fields: Any) -> Variables:
    return lambda w: {"input": {"contractId": w["assure"], "bucket": "activities", "quantity": "1", **fields}}


def adjust_input(**fields: Any) -> Variables:
    return lambda w: {"input": {
        "contractId": w["assure"], "bucket": "activities", "quantity": "1", "on": "2026-03-10", "reason": "fix",
        **fields,
    }}


def ticket_input(**fields: Any) -> Variables:
    return lambda w: {"input": {
        "customerId": w["customer"], "ticketType": "question", "severity": "standard", "subject": "Help", **fields,
    }}


def booking_input(**fields: Any) -> Variables:
    return lambda w: {"input": {"contractId": w["assure"], "activity": "advisory-call", "on": "2026-04-02", **fields}}


def outage_input(**fields: Any) -> Variables:
    return lambda w: {"input": {
        "startedAt": "2026-02-02T10:00:00+00:00", "endedAt": "2026-02-02T11:00:00+00:00", "impactedPortion": "0.5",
        "contractId": w["premium"], **fields,
    }}


def on_call_input(**fields: Any) -> Variables:
    return lambda w: {"input": {"contractId": w["tiered"], "dates": ["2026-03-14"], "dayRate": "4000", **fields}}


def user_input(**fields: Any) -> Variables:
    return lambda w: {"input": {
        "email": f"{unique('user')}@bad-input.example", "name": "New User", "password": PASSWORD, "kind": "CUSTOMER",
        "customerId": w["customer"], **fields,
    }}


def by_id(value: str) -> Variables:
    return lambda w: {"id": value}


def with_id(argument: str, key: str, /, **fields: Any) -> Variables:
    return lambda w: {"input": {argument: w[key], **fields}}


CASES: list[Case] = [
    # loadProgram: a program file is refused as a whole, before the TOML parser recurses or loads anything
    case("loadProgram", "admin", lambda w: {"input": {"source": nested_arrays(10_000)}}, "source", "nested-arrays",
         "ProgramFileInvalid"),
    case("loadProgram", "admin", lambda w: {"input": {"source": nested_tables(5_000)}}, "source", "nested-tables",
         "ProgramFileInvalid"),
    case("loadProgram", "admin", lambda w: {"input": {"source": "a" + ".a" * 100_000 + " = 1\n"}}, "source",
         "dotted-key", "ProgramFileInvalid"),
    case("loadProgram", "admin", lambda w: {"input": {"source": "[" + "a." * 1_000 + "a]\nx = 1\n"}}, "source",
         "table-header", "ProgramFileInvalid"),
    case("loadProgram", "admin", lambda w: {"input": {"source": program() + f"# {NUL}\n"}}, "source", "nul",
         "ProgramFileInvalid"),
    case("loadProgram", "admin", lambda w: {"input": {"source": program(**{'name = "Basic"': 'name = "B\\u0000"'})}},
         "source", "escaped-nul", "ProgramFileInvalid"),
    case("loadProgram", "admin", lambda w: {"input": {"source": program(**{'name = "Basic"': f'name = "B{BIDI}"'})}},
         "source", "bidi-name", "ProgramFileInvalid"),
    case("loadProgram", "admin", lambda w: {"input": {"source": program(**{"allowance = 3": "allowance = 1e999999999"})}},
         "source", "huge-float", "ProgramFileInvalid"),
    case("loadProgram", "admin", lambda w: {"input": {"source": program(**{"allowance = 3": "allowance = " + "9" * 5000})}},
         "source", "huge-integer", "ProgramFileInvalid"),
    case("loadProgram", "admin", lambda w: {"input": {"source": program() + "# \ud800\n"}}, "source", "surrogate",
         "ProgramFileInvalid"),
    case("loadProgram", "admin", lambda w: {"input": {"source": program(), "fileName": f"p{NUL}.toml"}}, "fileName",
         "nul"),
    case("loadProgram", "admin", lambda w: {"input": {"source": program(), "fileName": "p" * 501}}, "fileName", "long"),
    # createCustomer
    case("createCustomer", "admin", customer_input(name=f"Evil{NUL}Corp"), "name", "nul"),
    case("createCustomer", "admin", customer_input(name=f"Evil{BIDI}proC"), "name", "bidi-override"),
    case("createCustomer", "admin", customer_input(name=f"Evil{ISOLATE}Corp"), "name", "bidi-isolate"),
    case("createCustomer", "admin", customer_input(name=f"Ev{ZERO_WIDTH}il Corp"), "name", "zero-width-space"),
    case("createCustomer", "admin", customer_input(name=f"{BOM}Evil Corp"), "name", "bom"),
    case("createCustomer", "admin", customer_input(name="Evil\nCorp"), "name", "line-break"),
    case("createCustomer", "admin", customer_input(name="Evil\x1b[31mCorp"), "name", "escape"),
    case("createCustomer", "admin", customer_input(name=MEGABYTE), "name", "megabyte"),
    case("createCustomer", "admin", customer_input(code=f"evil{NUL}"), "code", "nul"),
    case("createCustomer", "admin", customer_input(email=f"it{NUL}@evil.example"), "email", "nul"),
    case("createCustomer", "admin", customer_input(email=f"it{BIDI}@evil.example"), "email", "bidi"),
    case("createCustomer", "admin", customer_input(country=f"D{NUL}"), "country", "nul"),
    # createPartner
    case("createPartner", "admin", partner_input(name=f"Partner{NUL}"), "name", "nul"),
    case("createPartner", "admin", partner_input(name=f"Part{JOINER}ner"), "name", "zero-width-joiner"),
    case("createPartner", "admin", partner_input(email=f"p{ZERO_WIDTH}@partner.example"), "email", "zero-width"),
    case("createPartner", "admin", partner_input(certifiedUntilDate="9999-12-31"), "certifiedUntilDate", "year-9999"),
    case("createPartner", "admin", partner_input(certifiedUntilDate="0001-01-01"), "certifiedUntilDate", "year-1"),
    # linkPartner
    case("linkPartner", "admin", lambda w: {"input": {"partnerId": NUL, "customerId": w["customer"]}}, "partnerId",
         "nul", "NotFoundError"),
    case("linkPartner", "admin", lambda w: {"input": {"partnerId": w["partner"], "customerId": "x" * 10_000}},
         "customerId", "long", "NotFoundError"),
    # setReportContacts
    case("setReportContacts", "admin", with_id("customerId", "customer", emails=[f"it@corp.example{NUL}"]),
         "reportContacts", "nul"),
    case("setReportContacts", "admin", with_id("customerId", "customer", emails=[f"i{BIDI}t@corp.example"]),
         "reportContacts", "bidi"),
    case("setReportContacts", "admin", with_id("customerId", "customer", emails=["it@corp.example"] * 1_000),
         "reportContacts", "many"),
    case("setReportContacts", "admin", with_id("customerId", "customer", emails=[MEGABYTE]), "reportContacts",
         "megabyte"),
    # createContract: far dates are refused at entry, so no read of a contract can fail on them
    case("createContract", "admin", contract_input(effectiveDate="0001-01-01"), "effectiveDate", "year-1"),
    case("createContract", "admin", contract_input(endDate="9999-12-31"), "endDate", "year-9999"),
    case("createContract", "admin", contract_input(effectiveDate="0001-01-01", endDate="9999-12-31"), "effectiveDate",
         "years-1-to-9999"),
    case("createContract", "admin", contract_input(effectiveDate="1999-12-31"), "effectiveDate", "before-2000"),
    case("createContract", "admin", contract_input(endDate="2101-01-01"), "endDate", "after-2100"),
    case("createContract", "admin", contract_input(effectiveDate="2026-01-01", endDate="2036-01-01"), "endDate",
         "longer-than-10-years"),
    case("createContract", "admin", contract_input(monthlyFee="1e1000000"), "monthlyFee", "1e1000000"),
    case("createContract", "admin", contract_input(monthlyFee="1e999999999999"), "monthlyFee", "1e999999999999"),
    case("createContract", "admin", contract_input(monthlyFee="-1e999999999999"), "monthlyFee", "negative-huge"),
    case("createContract", "admin", contract_input(reference=f"ORD{NUL}1"), "reference", "nul"),
    case("createContract", "admin", contract_input(reference=f"ORD{BIDI}1"), "reference", "bidi"),
    case("createContract", "admin", contract_input(programCode=f"advisory-assure{NUL}"), "programCode", "nul"),
    case("createContract", "admin", contract_input(planCode=f"sm{ZERO_WIDTH}all"), "planCode", "zero-width"),
    case("createContract", "admin", contract_input(clientManagerEmail=f"cm{NUL}@corp.example"), "clientManagerEmail",
         "nul"),
    case("createContract", "admin", contract_input(catalog=[f"advisory-call{NUL}"]), "catalog", "nul"),
    case("createContract", "admin", contract_input(catalog=["advisory-call"] * 1_000), "catalog", "many"),
    case("createContract", "admin",
         contract_input(planCode="custom", customAllowances=[{"bucket": f"activities{NUL}", "allowance": 5}]),
         "customAllowances", "nul"),
    case("createContract", "admin", contract_input(currency=f"EU{NUL}"), "currency", "nul"),
    # consumeEntitlement: quantities are bounded before any arithmetic
    case("consumeEntitlement", "provider", consume_input(quantity="1e1000000"), "quantity", "1e1000000"),
    case("consumeEntitlement", "provider", consume_input(quantity="1e999999999999"), "quantity", "1e999999999999"),
    case("consumeEntitlement", "provider", consume_input(quantity="-1e999999999999"), "quantity", "negative-huge"),
    case("consumeEntitlement", "provider", consume_input(quantity="1e-999999999999"), "quantity", "tiny"),
    case("consumeEntitlement", "provider", consume_input(quantity="0E+1000000"), "quantity", "zero-huge-exponent"),
    case("consumeEntitlement", "provider", consume_input(quantity="NaN"), "quantity", "nan"),
    case("consumeEntitlement", "provider", consume_input(quantity="-Infinity"), "quantity", "infinity"),
    case("consumeEntitlement", "provider", consume_input(quantity="9" * 60), "quantity", "sixty-digits"),
    case("consumeEntitlement", "provider", consume_input(reason=f"work{NUL}"), "reason", "nul"),
    case("consumeEntitlement", "provider", consume_input(reason="work\x85done"), "reason", "c1-control"),
    case("consumeEntitlement", "provider", consume_input(reason="work\ud800"), "reason", "surrogate"),
    case("consumeEntitlement", "provider", consume_input(reason=MEGABYTE), "reason", "megabyte"),
    case("consumeEntitlement", "provider", consume_input(bucket=f"activities{NUL}"), "bucket", "nul"),
    case("consumeEntitlement", "provider", consume_input(on="9999-12-31"), "on", "year-9999"),
    case("consumeEntitlement", "provider", consume_input(on="0001-01-01"), "on", "year-1"),
    case("consumeEntitlement", "provider", consume_input(idempotencyKey=f"key{NUL}"), "idempotencyKey", "nul"),
    case("consumeEntitlement", "provider", consume_input(idempotencyKey=f"key{ZERO_WIDTH}"), "idempotencyKey",
         "zero-width"),
    # reverseEntry
    case("reverseEntry", "provider", with_id("entryId", "entry", reason=f"undo{NUL}"), "reason", "nul"),
    case("reverseEntry", "provider", with_id("entryId", "entry", reason=MEGABYTE), "reason", "megabyte"),
    case("reverseEntry", "provider", with_id("entryId", "entry", reason="undo", idempotencyKey=f"k{BIDI}"),
         "idempotencyKey", "bidi"),
    # adjustEntitlement
    case("adjustEntitlement", "admin", adjust_input(quantity="1e1000000"), "quantity", "1e1000000"),
    case("adjustEntitlement", "admin", adjust_input(quantity="-1e999999999999"), "quantity", "negative-huge"),
    case("adjustEntitlement", "admin", adjust_input(on="9999-12-31"), "on", "year-9999"),
    case("adjustEntitlement", "admin", adjust_input(reason=f"fix{NUL}"), "reason", "nul"),
    case("adjustEntitlement", "admin", adjust_input(reason=MEGABYTE), "reason", "megabyte"),
    # fileTicket
    case("fileTicket", "customer", ticket_input(subject=f"Help{NUL}"), "subject", "nul"),
    case("fileTicket", "admin", ticket_input(subject=f"Help{BIDI}"), "subject", "bidi"),
    case("fileTicket", "admin", ticket_input(subject=f"He{ZERO_WIDTH}lp"), "subject", "zero-width"),
    case("fileTicket", "admin", ticket_input(subject="Help\nme"), "subject", "line-break"),
    case("fileTicket", "customer", ticket_input(description=f"It broke{NUL}"), "description", "nul"),
    case("fileTicket", "admin", ticket_input(description="x" * 20_001), "description", "too-long"),
    case("fileTicket", "admin", ticket_input(description=MEGABYTE), "description", "megabyte"),
    case("fileTicket", "admin", ticket_input(affectedAccount=f"acct{NUL}"), "affectedAccount", "nul"),
    case("fileTicket", "admin", ticket_input(stepsFollowed=f"1. click{NUL}"), "stepsFollowed", "nul"),
    case("fileTicket", "admin", ticket_input(expectedResult=MEGABYTE), "expectedResult", "megabyte"),
    case("fileTicket", "admin", ticket_input(ticketType=f"question{NUL}"), "ticketType", "nul"),
    case("fileTicket", "admin", ticket_input(severity=f"standard{BIDI}"), "severity", "bidi"),
    case("fileTicket", "admin", ticket_input(scopeItem=f"item{NUL}"), "scopeItem", "nul"),
    # transitionTicket
    case("transitionTicket", "admin", with_id("ticketId", "ticket", to=f"acknowledged{NUL}"), "to", "nul"),
    case("transitionTicket", "admin", with_id("ticketId", "ticket", to="acknowledged", reason=f"ok{NUL}"), "reason",
         "nul"),
    case("transitionTicket", "admin", with_id("ticketId", "ticket", to="acknowledged", reason=MEGABYTE), "reason",
         "megabyte"),
    case("transitionTicket", "admin",
         with_id("ticketId", "ticket", to="in_progress", nextUpdateAt="9999-12-31T23:59:59+00:00"), "nextUpdateAt",
         "year-9999"),
    case("transitionTicket", "admin",
         with_id("ticketId", "ticket", to="in_progress", nextUpdateAt="0001-01-01T00:00:00+14:00"), "nextUpdateAt",
         "year-1"),
    # addComment
    case("addComment", "customer", with_id("ticketId", "ticket", body=f"hello{NUL}"), "body", "nul"),
    case("addComment", "admin", with_id("ticketId", "ticket", body=f"note{NUL}", internal=True), "body",
         "nul-internal"),
    case("addComment", "admin", with_id("ticketId", "ticket", body="hello\ud800"), "body", "surrogate"),
    case("addComment", "admin", with_id("ticketId", "ticket", body=MEGABYTE), "body", "megabyte"),
    case("addComment", "admin",
         with_id("ticketId", "ticket", body="We are on it", nextUpdateAt="9999-12-31T00:00:00+00:00"), "nextUpdateAt",
         "year-9999"),
    # logTime
    case("logTime", "admin", with_id("ticketId", "ticket", minutes=30, note=f"work{NUL}"), "note", "nul"),
    case("logTime", "admin", with_id("ticketId", "ticket", minutes=30, note=MEGABYTE), "note", "megabyte"),
    case("logTime", "admin", with_id("ticketId", "ticket", minutes=30, note="work", workDate="0001-01-01"),
         "workDate", "year-1"),
    case("logTime", "admin", with_id("ticketId", "ticket", minutes=30, note="work", workDate="9999-12-31"),
         "workDate", "year-9999"),
    # bookActivity
    case("bookActivity", "customer", booking_input(note=f"please{NUL}"), "note", "nul"),
    case("bookActivity", "customer", booking_input(note=MEGABYTE), "note", "megabyte"),
    case("bookActivity", "admin", booking_input(on="9999-12-31"), "on", "year-9999"),
    case("bookActivity", "admin", booking_input(on="0001-01-01"), "on", "year-1"),
    case("bookActivity", "admin", booking_input(activity=f"advisory-call{NUL}"), "activity", "nul"),
    case("bookActivity", "customer", booking_input(idempotencyKey=f"k{NUL}"), "idempotencyKey", "nul"),
    # scheduleBooking
    case("scheduleBooking", "admin", with_id("bookingId", "booking", startsAt="9999-12-31T10:00:00+00:00"),
         "startsAt", "year-9999"),
    case("scheduleBooking", "admin", with_id("bookingId", "booking", startsAt="0001-01-01T00:00:00+05:00"),
         "startsAt", "year-1"),
    case("scheduleBooking", "admin",
         with_id("bookingId", "booking", startsAt="2026-04-02T09:00:00+00:00", staffEmail=f"cm{NUL}@corp.example"),
         "staffEmail", "nul"),
    # deliverBooking
    case("deliverBooking", "admin", with_id("bookingId", "booking", note=f"done{NUL}"), "note", "nul"),
    case("deliverBooking", "admin", with_id("bookingId", "booking", note=MEGABYTE), "note", "megabyte"),
    # cancelBooking
    case("cancelBooking", "customer", with_id("bookingId", "booking", reason=f"sorry{NUL}"), "reason", "nul"),
    case("cancelBooking", "customer", with_id("bookingId", "booking", reason=MEGABYTE), "reason", "megabyte"),
    # createCalendarFeed
    case("createCalendarFeed", "customer", with_id("contractId", "assure", name=f"Feed{NUL}"), "name", "nul"),
    case("createCalendarFeed", "customer", with_id("contractId", "assure", name=f"Feed{BIDI}"), "name", "bidi"),
    case("createCalendarFeed", "customer", with_id("contractId", "assure", name=f"Fe{ZERO_WIDTH}ed"), "name",
         "zero-width"),
    case("createCalendarFeed", "admin", with_id("contractId", "assure", name="f" * 201), "name", "too-long"),
    # revokeCalendarFeed
    case("revokeCalendarFeed", "customer", by_id(NUL), "id", "nul", "NotFoundError"),
    case("revokeCalendarFeed", "admin", by_id("x" * 10_000), "id", "long", "NotFoundError"),
    # recordOutage
    case("recordOutage", "admin", outage_input(startedAt="0001-01-01T00:00:00+14:00"), "startedAt", "year-1"),
    case("recordOutage", "admin", outage_input(endedAt="9999-12-31T23:59:59-12:00"), "endedAt", "year-9999"),
    case("recordOutage", "admin", outage_input(impactedPortion="1e1000000"), "impactedPortion", "1e1000000"),
    case("recordOutage", "admin", outage_input(impactedPortion="1e-999999999999"), "impactedPortion", "tiny"),
    case("recordOutage", "admin", outage_input(note=f"down{NUL}"), "note", "nul"),
    case("recordOutage", "admin", outage_input(note=MEGABYTE), "note", "megabyte"),
    case("recordOutage", "admin", outage_input(contractId=None, programCode=f"premium-availability{NUL}"),
         "programCode", "nul"),
    # reserveOnCall
    case("reserveOnCall", "admin", on_call_input(dates=["9999-12-31"]), "dates", "year-9999"),
    case("reserveOnCall", "admin", on_call_input(dates=["0001-01-01"]), "dates", "year-1"),
    case("reserveOnCall", "admin", on_call_input(dayRate="1e1000000"), "dayRate", "1e1000000"),
    case("reserveOnCall", "customer", on_call_input(dayRate="1e999999999999"), "dayRate", "1e999999999999"),
    case("reserveOnCall", "customer", on_call_input(note=f"call{NUL}"), "note", "nul"),
    case("reserveOnCall", "admin", on_call_input(window=f"weekends{NUL}"), "window", "nul"),
    # cancelOnCall
    case("cancelOnCall", "customer", by_id(NUL), "id", "nul", "NotFoundError"),
    # retryDelivery
    case("retryDelivery", "admin", by_id(f"{uuid.uuid4()}{NUL}"), "id", "nul", "NotFoundError"),
    # createUser
    case("createUser", "admin", user_input(name=f"User{NUL}"), "name", "nul"),
    case("createUser", "admin", user_input(name=f"Us{BIDI}er"), "name", "bidi"),
    case("createUser", "admin", user_input(email=f"u{NUL}@bad-input.example"), "email", "nul"),
    case("createUser", "admin", user_input(password=f"{PASSWORD}{NUL}"), "password", "nul"),
    case("createUser", "admin", user_input(password=MEGABYTE), "password", "megabyte"),
    # createApiToken
    case("createApiToken", "admin", lambda w: {"input": {"name": f"tok{NUL}", "scope": "PROVIDER", "access": "READ"}},
         "name", "nul"),
    case("createApiToken", "admin",
         lambda w: {"input": {"name": f"to{ZERO_WIDTH}k", "scope": "PROVIDER", "access": "READ"}}, "name", "zero-width"),
    case("createApiToken", "admin", lambda w: {"input": {
        "name": "tok", "scope": "PROVIDER", "access": "READ", "expiresAt": "9999-12-31T00:00:00+00:00"}},
        "expiresAt", "year-9999"),
    # revokeApiToken
    case("revokeApiToken", "admin", by_id(NUL), "id", "nul", "NotFoundError"),
    # webhooks
    case("createWebhookSubscription", "provider", lambda w: {"input": {
        "url": "https://hooks.example/in", "eventTypes": ["ticket.*"], "description": f"hook{NUL}"}},
        "description", "nul"),
    case("createWebhookSubscription", "provider", lambda w: {"input": {
        "url": f"https://hooks.example/{NUL}", "eventTypes": ["ticket.*"]}}, "url", "nul"),
    case("revokeWebhookSubscription", "provider", by_id(NUL), "id", "nul", "NotFoundError"),
    case("replayWebhookDelivery", "admin", by_id("x" * 10_000), "id", "long", "NotFoundError"),
]


def test_the_catalogue_covers_every_mutation_of_the_schema():
    mutations = set(_schema().mutation_type.fields)  # type: ignore[union-attr]
    covered = {c.mutation for c in CASES}
    assert mutations - covered == set(), "mutations without a bad-input case"
    assert covered - mutations == set(), "cases for mutations the schema does not have"
    assert len(CASES) >= 100
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("bad", CASES, ids=[c.id for c in CASES])
async def test_bad_input_gets_its_typed_error_and_writes_nothing(world: World, bad: Case):
    before = await row_counts(world.ctx)
    started = time.monotonic()
    response = await post(world, bad.caller, operation(bad.mutation), bad.variables(world))
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.text[:500]
    body = response.json()
    assert "errors" not in body, body["errors"]
    result = body["data"][bad.mutation]
    assert (result["__typename"], result["field"]) == (bad.typename, bad.field), result
    assert result["code"] and result["message"]
    assert len(result["message"]) < 2_000, "a refusal does not echo what it refused"
    assert elapsed < 10, f"refused only after {elapsed:.1f} s"
    assert await row_counts(world.ctx) == before


# ---- the Decimal scalar ---------------------------------------------------------------------------------


@pytest.mark.parametrize("quantity", ["1" * 65, "1e" + "9" * 100, "0." + "0" * 100_000 + "1"])
async def test_a_decimal_longer_than_64_characters_is_refused_before_it_is_parsed(world: World, quantity: str):
    before = await row_counts(world.ctx)
    response = await post(world, "provider", operation("consumeEntitlement"), consume_input(quantity=quantity)(world))
    body = response.json()
    assert response.status_code in (200, 400), response.text[:500]
    assert body.get("data") is None
    [error] = body["errors"]
    assert "at most 64" in error["message"] and "Decimal" in error["message"]
    assert len(error["message"]) < 500
    assert await row_counts(world.ctx) == before


LITERAL = (
    'mutation { consumeEntitlement(input: {contractId: "%s", bucket: "activities", quantity: %s}) '
    "{ __typename ... on UserError { field message } } }"
)


@pytest.mark.parametrize("literal", ['"' + "9" * 65 + '"', "9" * 5_000, "0." + "0" * 5_000 + "1"])
async def test_a_decimal_literal_in_the_query_is_bounded_too(world: World, literal: str):
    before = await row_counts(world.ctx)
    response = await post(world, "provider", LITERAL % (world["assure"], literal), {})
    assert response.status_code in (200, 400), response.text[:500]
    [error] = response.json()["errors"]
    assert "at most 64" in error["message"] and len(error["message"]) < 500
    assert await row_counts(world.ctx) == before


@pytest.mark.parametrize("literal", ["1e1000000", "1e999999999999", '"1e999999999999"', "-1e999999999999"])
async def test_a_huge_decimal_literal_gets_the_typed_error(world: World, literal: str):
    """Written unquoted, a huge exponent is no float's infinity: the service sees it as written."""
    before = await row_counts(world.ctx)
    response = await post(world, "provider", LITERAL % (world["assure"], literal), {})
    result = response.json()["data"]["consumeEntitlement"]
    assert (result["__typename"], result["field"]) == ("ValidationError", "quantity")
    assert "is too large" in result["message"]
    assert await row_counts(world.ctx) == before


# ---- far dates in reads ------------------------------------------------------------------------------------

WINDOWS = """
query Windows($from: Date!, $to: Date!) {
  calendarWindows(programCode: "partner-support", calendar: "business-hours-es", fromDate: $from, toDate: $to) { start }
}
"""


@pytest.mark.parametrize(
    ("start", "end", "field"),
    [
        ("0001-01-01", "0001-01-02", "fromDate"),
        ("9999-12-30", "9999-12-31", "fromDate"),
        ("2026-12-30", "9999-12-31", "toDate"),
        ("1999-12-31", "2000-01-01", "fromDate"),
    ],
)
async def test_calendar_windows_of_far_years_are_refused_with_the_field(world: World, start: str, end: str, field: str):
    response = await post(world, "customer", WINDOWS, {"from": start, "to": end})
    assert response.status_code == 200, response.text[:500]
    [error] = response.json()["errors"]
    assert error["path"] == ["calendarWindows"]
    assert error["extensions"]["code"] == "INVALID" and error["extensions"]["field"] == field
    assert "2000-01-01" in error["message"] and "2100-12-31" in error["message"]


async def test_the_widest_terms_accepted_read_back_whole(world: World):
    """Terms at both ends of the sane range, each as long as a term may be: the contract list, every period
    of them and their calendar feeds read whole."""
    spans = (("2000-01-01", "2009-12-31"), ("2091-01-01", "2100-12-31"))
    created = []
    for start, end in spans:
        answer = await post(world, "admin", """
            mutation Make($input: CreateContractInput!) { createContract(input: $input) {
              __typename ... on CreateContractSuccess { contract { id } } ... on UserError { field message } } }""",
            contract_input(planCode="large", effectiveDate=start, endDate=end)(world))
        result = answer.json()["data"]["createContract"]
        assert result["__typename"] == "CreateContractSuccess", result
        created.append(result["contract"]["id"])

    listed = (await post(world, "customer", """
        query Mine($customer: ID) { contracts(customerId: $customer, first: 200) { edges { node {
          id effectiveDate endDate isActive entitlements { periodStart } } } } }""", {"customer": world["customer"]})).json()
    assert "errors" not in listed, listed["errors"]
    assert {e["node"]["id"] for e in listed["data"]["contracts"]["edges"]} >= set(created)

    for contract_id, (start, end) in zip(created, spans, strict=True):
        read = (await post(world, "customer", """
            query One($id: ID!) { contract(id: $id) {
              periods(bucket: "activities") { periodStart periodEnd allowance consumed expired } } }""",
            {"id": contract_id})).json()
        assert "errors" not in read, read["errors"]
        periods = read["data"]["contract"]["periods"]
        assert (periods[0]["periodStart"], periods[-1]["periodEnd"], len(periods)) == (start, end, 40)

        made = (await post(world, "customer", """
            mutation Feed($c: ID!) { createCalendarFeed(input: {contractId: $c}) {
              __typename ... on CreateCalendarFeedSuccess { url } } }""", {"c": contract_id})).json()
        url = made["data"]["createCalendarFeed"]["url"]
        served = await world.http.get(httpx.URL(url).raw_path.decode())
        assert served.status_code == 200, served.text[:300]
        assert served.text.count("BEGIN:VEVENT") == 40  # one per period end

"""The request limits at their defaults and configured: a costly query is refused before it runs while other
callers are served; every real query (the README's, the portal's GraphiQL example, the dashboard and ticket
lists) passes; each limit answers with its name and value, never a 500."""

from __future__ import annotations

import ast
import asyncio
import re
import time
from dataclasses import replace
from datetime import date
from typing import Any

import pytest
from graphql import get_introspection_query
from sqlalchemy import text

from api.app import create_app
from api.config import PROJECT_ROOT
from api.db import Database
from api.models import TokenAccess, TokenScope
from api.services import bookings, parties
from api.services.context import AppContext
from api.services.paging import Page
from tests.conftest import ADMIN
from tests.graphql.conftest import Connect

CYCLE = (
    "{ bookings(first:100){ edges{ node{ contract{ bookings(first:100){ edges{ node{ contract{ "
    "bookings(first:100){ edges{ node{ id }}}}}}}}}}}}"
)
# The same query, written with fragments: they are counted as if written out.
CYCLE_WITH_FRAGMENTS = """
query Cycle { bookings(first: 100) { ...Page } }
fragment Page on BookingConnection { edges { node { contract { bookings(first: 100) { ...Inner } } } } }
fragment Inner on BookingConnection { edges { node { contract { bookings(first: 100) { edges { node { id } } } } } } }
"""
CYCLE_COST = "query cost 3,040,401 exceeds the limit of 50,000"

LEFT_THIS_QUARTER = """
query { contracts { edges { node { reference customer { name }
  entitlements { bucket unit ledgerUnit periodStart periodEnd allowance consumed remaining expiresInDays } } } } }
"""
TICKET_LISTS = [
    # The ticket list of test_tickets_connection.py, a full page of the largest size.
    """query($first: Int) { tickets(first: $first) { edges { cursor node { id customerId status severity ticketType
       subject filedBy } } pageInfo { hasNextPage endCursor } } }""",
    """query($first: Int) { tickets(first: $first) { edges { node { id subject filedBy customer { id code }
       contract { id reference } plan { code name } lastComment { body createdAt internal authorKind }
       sla { target dueAt breached atRisk } } } pageInfo { hasNextPage endCursor } } }""",
]
BOOKING_LIST = """
query($id: ID!) { contract(id: $id) { reference activityCatalog { code name cost }
  bookings(first: 200) { edges { node { id activity status quantity periodStart periodEnd requestedDate
    staff { name email } partners { id } ledgerEntries { kind quantity bookingId } } } pageInfo { hasNextPage } }
  entitlements { bucket remaining expiringSoon } } }
"""


def readme_examples() -> list[str]:
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```graphql\n(.*?)```", readme, re.DOTALL)


def graphiql_example() -> str:
    script = (PROJECT_ROOT / "web" / "static" / "graphiql-start.js").read_text(encoding="utf-8")
    start = script.index("var query = ") + len("var query = ")
    source = script[start:script.index(";", start)]
    # The JS string literals it is made of read the same as Python's.
    return "".join(ast.literal_eval(part) for part in re.findall(r'"(?:[^"\\]|\\.)*"', source))


@pytest.fixture
async def dashboard(ctx, make_customer, make_contract):  # type: ignore[no-untyped-def]
    """A customer with two contracts and a few bookings, so the queries have rows to walk."""
    customer = await make_customer()
    first = await make_contract(customer=customer)
    second = await make_contract(customer=customer, program="partner-support", plan="enterprise",
                                 custom_allowances={"support-hours": 600})
    for day in (date(2026, 3, 20), date(2026, 3, 27)):
        await bookings.book_activity(ctx, ADMIN, bookings.NewBooking(first.id, "advisory-call", day))
    return customer, first, second


def limited(connect: Connect, settings: Any, database: Any, clock: Any, **limits: Any) -> Connect:
    return Connect(create_app(replace(settings, **limits), database=database, clock=clock), connect.ctx)


def message(body: dict[str, Any]) -> str:
    return body["errors"][0]["message"]


async def test_the_cyclic_query_is_refused_quickly_while_another_customers_read_succeeds(connect, dashboard, make_customer,
                                                                                     make_contract):
    customer, _, _ = dashboard
    hostile, _, _ = await connect.token(TokenScope.CUSTOMER, TokenAccess.READ, customer_id=customer.id)
    other = await make_customer()
    await make_contract(customer=other)
    reader, _, _ = await connect.token(TokenScope.CUSTOMER, TokenAccess.READ, customer_id=other.id)

    async def timed(call):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        response = await call
        return response, time.perf_counter() - started

    (refused, took), (read, _) = await asyncio.gather(
        timed(hostile.post(CYCLE)), timed(reader.post(LEFT_THIS_QUARTER))
    )
    assert refused.status_code == 200
    body = refused.json()
    assert body["data"] is None
    assert message(body).startswith(CYCLE_COST)
    assert body["errors"][0]["extensions"] == {"code": "QUERY_TOO_COSTLY", "limit": 50_000, "cost": 3_040_401}
    assert took < 0.5, f"the refusal took {took:.2f} s"
    assert read.status_code == 200
    assert "errors" not in read.json()
    assert len(read.json()["data"]["contracts"]["edges"]) == 1


async def test_fragments_are_counted_as_written_out(connect):
    caller, _, _ = await connect.token()
    body = (await caller.post(CYCLE_WITH_FRAGMENTS)).json()
    assert message(body).startswith(CYCLE_COST)


async def test_a_page_size_from_a_variable_counts_as_the_largest_page(connect, settings, database, clock):
    small = limited(connect, settings, database, clock, graphql_max_cost=1_000)
    caller, _, _ = await small.token()
    query = "query($n: Int!) { bookings(first: $n) { edges { node { id contract { reference } } } } }"
    body = (await caller.post(query, {"n": 1})).json()
    # 1 + 200 pages × (edges, node, id, contract, reference) whatever $n is
    assert message(body).startswith("query cost 1,001 exceeds the limit of 1,000")
    body = (await caller.post("{ bookings(first: 4) { edges { node { id contract { reference } } } } }")).json()
    assert "errors" not in body, body


async def test_an_unpaged_list_weighs_the_configured_list_size(connect, settings, database, clock):
    weighed = limited(connect, settings, database, clock, graphql_max_cost=100, graphql_list_size=10)
    caller, _, _ = await weighed.token()
    # programs (1) + 10 × (code, name, plans (1) + 10 × code) = 1 + 10 × 13 = 131
    body = (await caller.post("{ programs { code name plans { code } } }")).json()
    assert message(body).startswith("query cost 131 exceeds the limit of 100")
    assert "errors" not in (await caller.post("{ programs { code name } }")).json()


async def test_every_real_query_passes_at_the_default_limits(connect, dashboard, ctx):
    customer, contract, second = dashboard
    integrator, _, _ = await connect.token(TokenScope.PROVIDER, TokenAccess.READ_WRITE)
    own, _, _ = await connect.token(TokenScope.CUSTOMER, TokenAccess.READ, customer_id=customer.id)
    examples = readme_examples()
    assert len(examples) >= 5
    for example in examples:
        # The examples' placeholders: a real contract, and a month that has begun (the tests' clock is March 2026).
        query = re.sub(r'month: "\d{4}-\d{2}"', 'month: "2026-03"', example.replace('"…"', f'"{contract.id}"'))
        response = await integrator.post(query, {"id": str(contract.id)})
        assert response.status_code == 200, response.text
        assert "errors" not in response.json(), (example, response.json())
    dashboard_data = await own.data(graphiql_example())
    assert {e["node"]["reference"] for e in dashboard_data["contracts"]["edges"]} == {contract.reference, second.reference}
    await own.data(LEFT_THIS_QUARTER)
    for ticket_list in TICKET_LISTS:
        await integrator.data(ticket_list, {"first": 200})
    data = await own.data(BOOKING_LIST, {"id": str(contract.id)})
    assert len(data["contract"]["bookings"]["edges"]) == 2
    # GraphiQL's schema query, in development.
    schema = await integrator.data(get_introspection_query(descriptions=True, input_value_deprecation=True))
    assert schema["__schema"]["queryType"]["name"] == "Query"


async def test_depth_counts_introspection(connect, settings, database, clock):
    shallow = limited(connect, settings, database, clock, graphql_max_depth=3)
    caller, _, _ = await shallow.token()
    assert "errors" not in (await caller.post("{ __schema { types { fields { name } } } }")).json()
    body = (await caller.post("query Deep { __schema { types { fields { type { name } } } } }")).json()
    assert body["data"] is None
    assert message(body) == "'Deep' exceeds maximum operation depth of 3"
    assert body["errors"][0]["extensions"] == {"code": "QUERY_TOO_DEEP", "limit": 3, "depth": 4}


async def test_nested_introspection_is_refused(connect):
    caller, _, _ = await connect.token()
    query = "{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }"
    body = (await caller.post(query)).json()
    assert body["data"] is None
    assert "Maximum introspection depth exceeded" in [e["message"] for e in body["errors"]]


async def test_too_many_tokens_are_refused_before_parsing_finishes(connect, settings, database, clock):
    caller, _, _ = await connect.token()
    huge = "{ " + "a " * 100_000 + "}"  # 100,000 tokens
    started = time.perf_counter()
    body = (await caller.post(huge)).json()
    assert time.perf_counter() - started < 1
    assert body["data"] is None
    assert message(body) == "Syntax Error: Document contains more than 2000 tokens. Parsing aborted."
    few = limited(connect, settings, database, clock, graphql_max_tokens=100)
    small, _, _ = await few.token()
    assert "more than 100 tokens" in message((await small.post("{ " + "__typename " * 120 + "}")).json())


async def test_production_refuses_introspection_but_answers_typename(connect, settings, database, clock):
    production = limited(connect, settings, database, clock, environment="production")
    caller, _, _ = await production.token()
    body = (await caller.post("{ __schema { queryType { name } } }")).json()
    assert body["data"] is None
    assert message(body) == (
        "GraphQL introspection has been disabled, but the requested query contained the field '__schema'."
    )
    assert "introspection has been disabled" in message((await caller.post('{ __type(name: "Query") { name } }')).json())
    assert (await caller.data("{ __typename }")) == {"__typename": "Query"}


async def test_production_serves_no_graphiql(connect, settings, database, clock):
    production = limited(connect, settings, database, clock, environment="production")
    caller, _, _ = await production.user()
    ide = await caller.http.get("/api")
    assert ide.status_code == 404
    browser = await caller.http.get("/graphql", headers={"Accept": "text/html"})
    assert browser.status_code == 405  # no redirect to an IDE
    development, _, _ = await connect.user()
    assert (await development.http.get("/graphql", headers={"Accept": "text/html"})).headers["location"] == "/api"


async def test_an_operation_past_its_time_budget_is_stopped(connect, settings, database, clock, monkeypatch):
    budget = limited(connect, settings, database, clock, request_timeout_seconds=0.3)
    caller, _, _ = await budget.token()
    finished = []

    async def slow(*args: Any, **kwargs: Any):  # type: ignore[no-untyped-def]
        await asyncio.sleep(3)
        finished.append(True)
        return Page([], False, None)

    monkeypatch.setattr(parties, "page_customers", slow)
    started = time.perf_counter()
    response = await caller.post("{ customers { edges { node { code } } } }")
    assert time.perf_counter() - started < 1.5
    assert response.status_code == 200
    body = response.json()
    assert body["data"] is None
    assert body["errors"] == [{
        "message": "the request was stopped: it took longer than its time budget of 0.3 s (ENTITLE_REQUEST_TIMEOUT)",
        "extensions": {"code": "TIME_BUDGET_EXCEEDED", "limit": 0.3},
    }]
    assert not finished


async def test_a_statement_past_the_statement_timeout_is_stopped(connect, settings, database_url, clock, monkeypatch):
    limited_db = Database(database_url, statement_timeout=0.2)
    app = create_app(replace(settings, statement_timeout_seconds=0.2), database=limited_db, clock=clock)
    caller, _, _ = await Connect(app, connect.ctx).token()
    slow_sql = (
        "SELECT pg_sleep(3)" if limited_db.dialect == "postgresql" else
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM (SELECT x FROM c LIMIT 100000000)"
    )

    async def slow(ctx: AppContext, *args: Any, **kwargs: Any):  # type: ignore[no-untyped-def]
        async with ctx.db.read() as session:
            await session.execute(text(slow_sql))
        return Page([], False, None)

    monkeypatch.setattr(parties, "page_customers", slow)
    try:
        started = time.perf_counter()
        body = (await caller.post("{ customers { edges { node { code } } } }")).json()
        assert time.perf_counter() - started < 2
        [error] = body["errors"]
        assert error["message"] == (
            "a database statement took longer than the statement timeout of 0.2 s (ENTITLE_DB_STATEMENT_TIMEOUT) "
            "and was stopped; nothing it was writing was kept"
        )
        assert error["extensions"]["code"] == "STATEMENT_TIMEOUT"
        # The connection went back to the pool in working order.
        monkeypatch.undo()
        assert "errors" not in (await caller.post("{ customers { edges { node { code } } } }")).json()
    finally:
        await limited_db.dispose()


@pytest.mark.parametrize("accept", ["application/json", "application/graphql-response+json"])
async def test_variables_nested_100000_deep_get_400(connect, accept):
    caller, _, _ = await connect.token()
    deep = '{"query": "{ __typename }", "variables": {"x": ' + "[" * 100_000 + "]" * 100_000 + "}}"
    response = await caller.http.post(
        "/graphql", content=deep, headers={"Content-Type": "application/json", "Accept": accept}
    )
    assert response.status_code == 400
    assert response.headers["content-type"].startswith(accept)
    assert response.json() == {"errors": [{
        "message": "the request's JSON is nested deeper than the limit of 32 levels (ENTITLE_MAX_JSON_DEPTH)",
        "extensions": {"code": "BAD_REQUEST"},
    }]}


async def test_json_nesting_within_the_limit_is_parsed(connect, settings, database, clock):
    caller, _, _ = await connect.token()
    within = {"x": [[[[[[[[1]]]]]]]]}  # the body is two levels more
    response = await caller.post("query($x: [[[[[[[[Int]]]]]]]]) { __typename }", within)
    assert response.status_code == 200, response.text
    tight = limited(connect, settings, database, clock, max_json_depth=8)
    small, _, _ = await tight.token()
    assert (await small.post("query($x: [[[[[[[[Int]]]]]]]]) { __typename }", within)).status_code == 400


async def test_a_body_past_the_limit_is_refused_before_it_is_read(connect, settings, database, clock):
    caller, _, _ = await connect.token()
    big = b'{"query": "{ __typename }", "pad": "' + b"x" * 1_100_000 + b'"}'
    response = await caller.http.post("/graphql", content=big, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json() == {"errors": [{
        "message": f"the request body ({len(big):,} bytes) is larger than the limit of 1,048,576 bytes (ENTITLE_MAX_BODY_BYTES)",
        "extensions": {"code": "BODY_TOO_LARGE"},
    }]}
    assert response.headers["x-request-id"]

    async def chunks():  # type: ignore[no-untyped-def]
        yield b'{"query": "{ __typename }", "pad": "'
        for _ in range(40):
            yield b"x" * 32_768
        yield b'"}'

    streamed = await caller.http.post("/graphql", content=chunks(), headers={"Content-Type": "application/json"})
    assert "content-length" not in streamed.request.headers
    assert streamed.status_code == 413
    assert streamed.json()["errors"][0]["message"] == (
        "the request body is larger than the limit of 1,048,576 bytes (ENTITLE_MAX_BODY_BYTES)"
    )
    # The portal's forms too.
    login = await connect.anonymous().http.post("/login", content=b"email=" + b"a" * 2_000_000,
                                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert login.status_code == 413
    # A configured limit; a body within it is served.
    tight = limited(connect, settings, database, clock, max_body_bytes=2_048)
    small, _, _ = await tight.token()
    assert (await small.post("{ __typename }")).status_code == 200
    assert (await small.post("{ __typename }", {"pad": "x" * 3_000})).status_code == 413

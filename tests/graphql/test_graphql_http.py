"""GraphQL over HTTP by the specification's rules (the media types of graphql-http's audit), and errors that never
leak internals: a generic message with the request id, the details in the JSON log under the same id."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from api.app import create_app
from api.graphql.masking import internal_error_message
from api.observability import JsonFormatter, RequestIdFilter
from api.services import parties, reports
from api.services.context import AppContext
from tests.graphql.conftest import Caller, Connect

GRAPHQL_RESPONSE = "application/graphql-response+json"


async def post(caller: Caller, body: Any, accept: str | None, **headers: str) -> httpx.Response:
    if accept is not None:
        headers["Accept"] = accept
    content = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return await caller.http.post("/graphql", content=content, headers={"Content-Type": "application/json", **headers})


@pytest.fixture
async def caller(connect: Connect) -> Caller:
    return (await connect.token())[0]


@pytest.mark.parametrize(("accept", "media"), [
    (GRAPHQL_RESPONSE, GRAPHQL_RESPONSE),
    ("application/json", "application/json"),
    ("*/*", "application/json"),
    (f"{GRAPHQL_RESPONSE}, application/json;q=0.9", GRAPHQL_RESPONSE),
    (f"{GRAPHQL_RESPONSE};q=0.5, application/json", "application/json"),
    ("application/json, multipart/mixed", "application/json"),  # GraphiQL's fetcher
])
async def test_the_response_has_the_media_type_the_client_prefers(caller, accept, media):
    response = await post(caller, {"query": "{ __typename }"}, accept)
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == media
    assert response.json() == {"data": {"__typename": "Query"}}


async def test_without_accept_the_answer_is_application_json(caller):
    request = caller.http.build_request("POST", "/graphql", json={"query": "{ __typename }"})
    del request.headers["accept"]
    response = await caller.http.send(request)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"


async def test_a_client_accepting_neither_media_type_gets_406(caller):
    response = await post(caller, {"query": "{ __typename }"}, "text/html")
    assert response.status_code == 406
    assert response.json()["errors"][0]["extensions"]["code"] == "NOT_ACCEPTABLE"


REQUEST_ERRORS = {
    "parse": ({"query": "{"}, "Syntax Error: Expected Name, found <EOF>."),
    "validation": ({"query": "{ noSuchField }"}, "Cannot query field 'noSuchField' on type 'Query'."),
    "limit": ({"query": "{ a: __typename " + " ".join(f"b{i}: __typename" for i in range(40)) + " }"},
              "41 aliases found. Allowed: 30"),
    "operation": ({"query": "query A { __typename }", "operationName": "B"}, 'Unknown operation named "B".'),
    "variables": ({"query": "query($id: ID!) { contract(id: $id) { id } }"},
                  "Variable '$id' has invalid value: Expected a value of non-null type 'ID!' to be provided."),
}


@pytest.mark.parametrize("case", REQUEST_ERRORS)
async def test_request_errors_are_400_without_data_for_graphql_response_json(caller, case):
    body, expected = REQUEST_ERRORS[case]
    response = await post(caller, body, GRAPHQL_RESPONSE)
    assert response.status_code == 400
    assert response.headers["content-type"] == f"{GRAPHQL_RESPONSE}; charset=utf-8"
    answer = response.json()
    assert "data" not in answer
    assert expected in answer["errors"][0]["message"]


@pytest.mark.parametrize("case", REQUEST_ERRORS)
async def test_request_errors_stay_200_with_data_null_for_application_json(caller, case):
    body, expected = REQUEST_ERRORS[case]
    response = await post(caller, body, "application/json")
    assert response.status_code == 200
    answer = response.json()
    assert answer["data"] is None
    assert expected in answer["errors"][0]["message"]


async def test_the_cost_limit_is_a_request_error(caller):
    query = "{ bookings(first: 200) { edges { node { contract { bookings(first: 200) { edges { node { id } } } } } } } }"
    response = await post(caller, {"query": query}, GRAPHQL_RESPONSE)
    assert response.status_code == 400
    assert "data" not in response.json()
    assert response.json()["errors"][0]["extensions"]["code"] == "QUERY_TOO_COSTLY"


BAD_MONTH = '{ __typename consumptionReport(contractId: "00000000-0000-0000-0000-000000000000", month: "2026-99") { month } }'


async def test_field_errors_keep_200_and_data(caller):
    response = await post(caller, {"query": BAD_MONTH}, GRAPHQL_RESPONSE)
    assert response.status_code == 200
    answer = response.json()
    assert answer["data"] == {"__typename": "Query", "consumptionReport": None}
    assert answer["errors"][0]["path"] == ["consumptionReport"]


async def test_a_mutation_answers_200(caller):
    query = 'mutation { createCustomer(input: {code: "ghr-json", name: "GHR"}) { __typename } }'
    response = await post(caller, {"query": query}, GRAPHQL_RESPONSE)
    assert response.status_code == 200
    assert response.json()["data"]["createCustomer"]["__typename"]


@pytest.mark.parametrize("accept", [GRAPHQL_RESPONSE, "application/json"])
@pytest.mark.parametrize(("body", "expected"), [
    ('{ "not a JSON', "Unable to parse request body as JSON"),
    ({"qeury": "{ __typename }"}, "No GraphQL query found in the request"),
    ({"query": 0}, "The GraphQL operation's `query` must be a string or null, if provided."),
    ({"query": "{ __typename }", "variables": [7]},
     "The GraphQL operation's `variables` must be an object or null, if provided."),
    ({"query": "{ __typename }", "extensions": "x"},
     "The GraphQL operation's `extensions` must be an object or null, if provided."),
    ({"query": "{ __typename }", "operationName": 7},
     "The GraphQL operation's `operationName` must be a string or null, if provided."),
])
async def test_a_request_that_is_not_well_formed_gets_400_with_json_errors(caller, accept, body, expected):
    response = await post(caller, body, accept)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith(accept)
    assert response.json() == {"errors": [{"message": expected, "extensions": {"code": "BAD_REQUEST"}}]}


async def test_a_body_that_is_not_json_gets_415(caller):
    response = await caller.http.post("/graphql", content="{ __typename }", headers={"Content-Type": "text/plain"})
    assert response.status_code == 415
    assert response.json()["errors"][0]["message"] == "send the operation as JSON (Content-Type: application/json)"


# ---- request ids and masked errors ----------------------------------------------------------------------


async def test_every_response_carries_a_request_id(connect, caller):
    responses = [
        await caller.post("{ __typename }"),
        await connect.anonymous().post("{ __typename }"),  # 401
        await caller.http.get("/healthz"),
        await caller.http.get("/no/such/page"),
        await caller.http.get("/graphql"),  # 405
    ]
    ids = [r.headers["x-request-id"] for r in responses]
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    assert len(set(ids)) == len(ids)
    kept = await caller.post("{ __typename }", headers={"X-Request-ID": "trace-4711.abc"})
    assert kept.headers["x-request-id"] == "trace-4711.abc"
    for insane in ("a b", "x" * 200, '"><script>', "-leading-dash"):
        replaced = await caller.post("{ __typename }", headers={"X-Request-ID": insane})
        assert replaced.headers["x-request-id"] != insane
        assert len(replaced.headers["x-request-id"]) == 32


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The lines the application logs, as `entitle serve` writes them (JSON, with the request id)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("entitle")
    logger.addHandler(handler)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)


def log_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


SECRET = "s3cret-bound-value"


async def failing_customers(ctx: AppContext, *args: Any, **kwargs: Any) -> Any:
    async with ctx.db.read() as session:
        await session.execute(text("SELECT hidden FROM no_such_table WHERE owner = :owner"), {"owner": SECRET})


def app_for(connect: Connect, settings: Any, database: Any, clock: Any, *, client: tuple[str, int] | None = None,
            **changes: Any) -> Caller:
    app = create_app(replace(settings, **changes), database=database, clock=clock)
    transport = httpx.ASGITransport(app=app, client=client or ("127.0.0.1", 4321))
    http = httpx.AsyncClient(transport=transport, base_url="http://testserver")
    connect.opened.append(http)
    return Caller(http)


@pytest.mark.parametrize(("environment", "client"), [
    ("production", ("127.0.0.1", 4321)),
    ("development", ("203.0.113.9", 4321)),
])
async def test_an_unexpected_error_answers_a_generic_message_and_logs_the_details(
    connect, settings, database, clock, monkeypatch, json_log, environment, client
):
    caller = app_for(connect, settings, database, clock, client=client, environment=environment)
    _, _, secret = await connect.token()
    caller.http.headers["Authorization"] = f"Bearer {secret}"
    monkeypatch.setattr(parties, "page_customers", failing_customers)
    response = await caller.post("query Customers { customers { edges { node { code } } } }")
    assert response.status_code == 200
    request_id = response.headers["x-request-id"]
    body = response.json()
    assert body["data"] is None
    [error] = body["errors"]
    assert error["message"] == internal_error_message(request_id)
    assert error["path"] == ["customers"]
    assert error["extensions"] == {"code": "INTERNAL_ERROR", "requestId": request_id}
    for leak in ("no_such_table", "SELECT", SECRET, "sqlite", "psycopg", "Traceback"):
        assert leak not in response.text
    [line] = [line for line in log_lines(json_log) if line["request_id"] == request_id]
    assert line["level"] == "error" and line["logger"] == "entitle.graphql"
    assert line["message"] == "unexpected error in GraphQL operation"
    assert line["operation"] == "Customers" and line["path"] == "customers"
    assert "no_such_table" in line["exception"]["message"]
    assert "failing_customers" in line["exception"]["traceback"]


async def test_development_names_the_error_type_to_a_local_client_but_never_the_sql(
    connect, settings, database, clock, monkeypatch, json_log
):
    caller = app_for(connect, settings, database, clock)
    _, _, secret = await connect.token()
    caller.http.headers["Authorization"] = f"Bearer {secret}"
    monkeypatch.setattr(parties, "page_customers", failing_customers)
    body = (await caller.post("{ customers { edges { node { code } } } }")).json()
    [error] = body["errors"]
    assert error["extensions"]["exception"]["type"] == "sqlalchemy.exc.OperationalError" or (
        error["extensions"]["exception"]["type"] == "sqlalchemy.exc.ProgrammingError"
    )
    assert "message" not in error["extensions"]["exception"]
    assert "no_such_table" not in json.dumps(body)

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a plain bug")

    monkeypatch.setattr(parties, "page_customers", broken)
    body = (await caller.post("{ customers { edges { node { code } } } }")).json()
    assert body["errors"][0]["extensions"]["exception"] == {"type": "builtins.RuntimeError", "message": "a plain bug"}


async def test_refusals_keep_their_message(caller):
    body = (await caller.post(BAD_MONTH)).json()
    assert body["errors"][0]["message"] == "month '2026-99' is not a calendar month written YYYY-MM, such as 2026-03"


async def test_an_unexpected_error_outside_graphql_answers_500_with_the_request_id(
    connect, settings, database, clock, monkeypatch, json_log, make_contract
):
    caller = app_for(connect, settings, database, clock, client=("198.51.100.7", 1), environment="production")
    _, _, secret = await connect.token()
    contract = await make_contract()

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"internal detail {SECRET}")

    monkeypatch.setattr(reports, "consumption_report", broken)
    response = await caller.http.get(f"/reports/{contract.id}/2026-03.csv", headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 500
    request_id = response.headers["x-request-id"]
    assert response.json() == {"errors": [{
        "message": internal_error_message(request_id),
        "extensions": {"code": "INTERNAL_ERROR", "requestId": request_id},
    }]}
    assert SECRET not in response.text
    assert response.headers["content-security-policy"]
    [line] = [line for line in log_lines(json_log) if line["request_id"] == request_id]
    assert line["logger"] == "entitle.http" and line["path"] == f"/reports/{contract.id}/2026-03.csv"
    assert SECRET in line["exception"]["message"]


async def test_an_exception_while_validating_is_masked_too(connect, settings, database, clock):
    # Fragments spread within each other 2,000 deep overflow a validator's recursion (possible only with the
    # token limit raised far above its default): the answer still hides what happened.
    caller = app_for(connect, settings, database, clock, client=("203.0.113.9", 1), graphql_max_tokens=100_000)
    _, _, secret = await connect.token()
    caller.http.headers["Authorization"] = f"Bearer {secret}"
    chain = " ".join(f"fragment F{i} on Query {{ ...F{i + 1} }}" for i in range(2_000))
    response = await caller.post("query { ...F0 } " + chain + " fragment F2000 on Query { __typename }")
    assert response.status_code == 200
    body = response.json()
    assert body["data"] is None
    assert "recursion" not in response.text
    assert body["errors"][0]["extensions"]["code"] == "INTERNAL_ERROR"

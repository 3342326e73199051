"""The committed schema file, and the guards around the GraphQL endpoint."""

from __future__ import annotations

import uuid
import warnings
from collections.abc import AsyncIterator
from dataclasses import replace
from decimal import Decimal

import httpx
import pytest

from api.auth import CSRF_HEADER, SESSION_COOKIE
from api.config import PROJECT_ROOT, Settings
from api.graphql.schema import build_schema
from api.services import ledger
from tests.conftest import ADMIN, unique

# The deepest a real query goes (five levels of selections): the schema has no cycles.
DEEP = "query Deep($id: ID!) { contract(id: $id) { ledger { edges { node { id } } } } }"


def test_committed_schema_is_current():
    committed = (PROJECT_ROOT / "schema.graphql").read_text(encoding="utf-8")
    current = build_schema(Settings()).as_str() + "\n"
    assert committed == current, "schema.graphql is out of date: run `entitle export-schema` and commit the result"


def test_schema_builds_fresh_extensions_per_request():
    # Extension instances shared by every request are deprecated by strawberry: concurrent requests
    # would share one execution context (see strawberry issue #4369).
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        schema = build_schema(Settings(environment="production"))
    first, second = schema.get_extensions(), schema.get_extensions()
    assert {type(e).__name__ for e in first} >= {"AddValidationRules", "ParserCache", "ValidationCache", "MaskErrors"}
    assert not {id(e) for e in first} & {id(e) for e in second}


GET_REFUSED = "GraphQL operations are sent with POST (Content-Type: application/json); GET is not supported"


async def test_queries_via_get_are_refused(client):
    response = await client.get("/graphql", params={"query": "{ programs { code } }"})
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.json() == {"errors": [{"message": GET_REFUSED, "extensions": {"code": "METHOD_NOT_ALLOWED"}}]}


async def test_mutations_via_get_are_refused(client):
    code = unique("via-get")
    query = f'mutation {{ createCustomer(input: {{code: "{code}", name: "Via GET"}}) {{ __typename }} }}'
    response = await client.get("/graphql", params={"query": query}, headers={"Accept": "application/graphql-response+json"})
    assert response.status_code == 405
    assert response.headers["content-type"].startswith("application/graphql-response+json")
    assert response.json()["errors"][0]["message"] == GET_REFUSED
    query = "query($s: String) { customers(search: $s) { edges { node { code } } } }"
    answer = (await client.post("/graphql", json={"query": query, "variables": {"s": code}})).json()
    assert answer["data"]["customers"]["edges"] == []


@pytest.fixture
async def shallow_client(settings, database, clock, admin_login) -> AsyncIterator[httpx.AsyncClient]:
    from api.app import create_app

    app = create_app(replace(settings, graphql_max_depth=3, graphql_max_aliases=2), database=database, clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
        http.cookies.set(SESSION_COOKIE, admin_login.session_secret)
        http.headers[CSRF_HEADER] = admin_login.csrf_token
        yield http


async def test_a_query_deeper_than_the_configured_depth_is_refused(shallow_client):
    response = await shallow_client.post("/graphql", json={"query": DEEP, "variables": {"id": str(uuid.uuid4())}})
    assert response.status_code == 200
    body = response.json()
    assert body["data"] is None
    [error] = body["errors"]
    assert error["message"] == "'Deep' exceeds maximum operation depth of 3"

    shallow = await shallow_client.post("/graphql", json={"query": "{ programs { plans { code } } }"})
    assert "errors" not in shallow.json()


async def test_default_depth_allows_the_deepest_real_query(client, make_contract, ctx):
    contract = await make_contract()
    await ledger.consume_entitlement(ctx, ADMIN, ledger.Consumption(contract.id, "activities", Decimal(1)))
    body = (await client.post("/graphql", json={"query": DEEP, "variables": {"id": str(contract.id)}})).json()
    assert "errors" not in body
    [edge] = body["data"]["contract"]["ledger"]["edges"]
    assert edge["node"]["id"]


async def test_too_many_aliases_are_refused(shallow_client):
    query = "{ a: programs { code } b: programs { code } c: programs { code } }"
    body = (await shallow_client.post("/graphql", json={"query": query})).json()
    assert body["data"] is None
    assert "aliases" in body["errors"][0]["message"]


async def test_unknown_fields_get_no_suggestions(client):
    body = (await client.post("/graphql", json={"query": "{ contracs { id } }"})).json()
    [error] = body["errors"]
    assert error["message"] == "Cannot query field 'contracs' on type 'Query'."
    assert "Did you mean" not in error["message"]

    body = (await client.post("/graphql", json={"query": "{ contracts { edges { node { refrence } } } }"})).json()
    assert [e["message"] for e in body["errors"]] == ["Cannot query field 'refrence' on type 'Contract'."]

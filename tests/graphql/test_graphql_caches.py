"""Parsing and validation are cached across requests, and the limits still hold for a cached document."""

from __future__ import annotations

from dataclasses import replace

from strawberry.extensions.parser_cache import _get_parse_cache
from strawberry.extensions.validation_cache import _get_validate_cache

from api.graphql.schema import build_schema

# The README's "what is left this quarter" query.
LEFT_THIS_QUARTER = """
query LeftThisQuarter {
  contracts { edges { node {
    reference customer { name } entitlements { bucketName unit remaining periodEnd expiresInDays }
  } } }
}
"""


def _hit_rate(before, after) -> float:  # type: ignore[no-untyped-def]
    hits, misses = after.hits - before.hits, after.misses - before.misses
    return hits / (hits + misses)


async def test_a_repeated_query_is_parsed_and_validated_once(connect, settings):  # type: ignore[no-untyped-def]
    caller, _, _ = await connect.token()
    parse, validate = _get_parse_cache(settings.graphql_cache_size), _get_validate_cache(settings.graphql_cache_size)
    parsed, validated = parse.cache_info(), validate.cache_info()
    for _ in range(50):
        await caller.data(LEFT_THIS_QUARTER)
    assert _hit_rate(parsed, parse.cache_info()) > 0.95
    assert _hit_rate(validated, validate.cache_info()) > 0.95


async def test_two_schemas_share_the_cached_limits_rules(settings):  # type: ignore[no-untyped-def]
    # The limits' rule classes are made once per schema, so every request of a schema has one cache key.
    schema = build_schema(settings)
    first = [e for e in schema.get_extensions() if type(e).__name__ == "AddValidationRules"]
    second = [e for e in schema.get_extensions() if type(e).__name__ == "AddValidationRules"]
    assert first[0].validation_rules == second[0].validation_rules


async def test_a_cached_document_is_still_refused_past_the_depth_limit(connect, settings):  # type: ignore[no-untyped-def]
    caller, _, _ = await connect.token()
    deep = "{ " + "bookings { edges { node { contract { " * 4 + "id" + " } } } }" * 4 + " }"
    for _ in range(3):
        response = await caller.post(deep)
        body = response.json()
        assert "exceeds maximum operation depth" in body["errors"][0]["message"], body
        assert body.get("data") is None


async def test_caches_can_be_turned_off(settings):  # type: ignore[no-untyped-def]
    names = {type(e).__name__ for e in build_schema(replace(settings, graphql_cache_size=0)).get_extensions()}
    assert "ParserCache" not in names and "ValidationCache" not in names
    assert "AddValidationRules" in names

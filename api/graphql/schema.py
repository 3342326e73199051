"""The schema and its limits, assembled from one module per aggregate."""

from __future__ import annotations

from functools import partial

import strawberry
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types

from api.config import Settings
from api.graphql import (
    availability,
    bookings,
    contracts,
    deliveries,
    identity,
    parties,
    programs,
    reports,
    tickets,
    webhooks,
)
from api.graphql.errors import ConflictError, NotFoundError, PermissionDeniedError, ValidationError
from api.graphql.limits import query_limit_rules
from api.graphql.masking import EntitleSchema, MaskErrors
from api.graphql.scalars import SCALAR_OVERRIDES
from api.graphql.uncancelled import run_resolvers_to_the_end
from api.services.paging import MAX_PAGE

__all__ = ["Mutation", "Query", "build_schema"]

_AGGREGATES = (programs, parties, contracts, tickets, bookings, availability, reports, deliveries, identity, webhooks)

Query = merge_types("Query", tuple(m.__dict__[n] for m in _AGGREGATES for n in m.__all__ if n.endswith("Query")))
Mutation = merge_types(
    "Mutation", tuple(m.__dict__[n] for m in _AGGREGATES for n in m.__all__ if n.endswith("Mutation"))
)


def build_schema(settings: Settings) -> strawberry.Schema:
    # The limits' validation rules are built once: the validation cache keys on the rule classes, and a
    # limiter built per request makes new classes, so every request would miss.
    # Depth and cost count introspection too; in production introspection is refused outright.
    limits = [
        *query_limit_rules(
            max_depth=settings.graphql_max_depth, max_cost=settings.graphql_max_cost,
            list_size=settings.graphql_list_size, max_page=MAX_PAGE, introspection=not settings.production,
        ),
        *MaxAliasesLimiter(max_alias_count=settings.graphql_max_aliases).validation_rules,
    ]
    # Factories, not instances: each request gets fresh extensions, so concurrent requests never share
    # one extension's execution context (a shared MaskErrors could mask, or leak, another request's errors).
    # The parse and validation caches live at module level, shared by every request; their size bounds
    # the memory that distinct query texts can take.
    extensions: list = [
        partial(MaxTokensLimiter, max_token_count=settings.graphql_max_tokens),
        partial(AddValidationRules, limits),
    ]
    if settings.graphql_cache_size:
        extensions += [
            partial(ParserCache, maxsize=settings.graphql_cache_size),
            partial(ValidationCache, maxsize=settings.graphql_cache_size),
        ]
    if settings.production:
        extensions.append(DisableIntrospection)
    # Unexpected errors are masked in every mode: a generic message and the request id; details go to the log.
    extensions.append(partial(
        MaskErrors, production=settings.production, statement_timeout_seconds=settings.statement_timeout_seconds
    ))
    schema = EntitleSchema(
        query=Query,
        mutation=Mutation,
        extensions=extensions,
        config=StrawberryConfig(disable_field_suggestions=True),
        types=[ValidationError, NotFoundError, ConflictError, PermissionDeniedError],
        scalar_overrides=SCALAR_OVERRIDES,  # api/graphql/scalars.py: a Decimal's text is bounded before parsing
    )
    run_resolvers_to_the_end(schema._schema)  # a sibling's failure never cuts a statement off mid-way
    return schema

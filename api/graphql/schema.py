"""The schema and its limits, assembled from one module per aggregate."""

from __future__ import annotations

from functools import partial

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    MaskErrors,
    MaxAliasesLimiter,
    ParserCache,
    QueryDepthLimiter,
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
)
from api.graphql.errors import ConflictError, NotFoundError, PermissionDeniedError, ValidationError
from api.services.errors import DomainError

__all__ = ["Mutation", "Query", "build_schema"]

_AGGREGATES = (programs, parties, contracts, tickets, bookings, availability, reports, deliveries, identity)

Query = merge_types("Query", tuple(m.__dict__[n] for m in _AGGREGATES for n in m.__all__ if n.endswith("Query")))
Mutation = merge_types(
    "Mutation", tuple(m.__dict__[n] for m in _AGGREGATES for n in m.__all__ if n.endswith("Mutation"))
)


def _mask(error: GraphQLError) -> bool:
    """In production only refusals of the service layer keep their message."""
    return not isinstance(error.original_error, DomainError)


def build_schema(settings: Settings) -> strawberry.Schema:
    # The limits' validation rules are built once: the validation cache keys on the rule classes, and a
    # limiter built per request makes new classes, so every request would miss.
    limits = [
        *QueryDepthLimiter(max_depth=settings.graphql_max_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=settings.graphql_max_aliases).validation_rules,
    ]
    # Factories, not instances: each request gets fresh extensions, so concurrent requests never share
    # one extension's execution context (a shared MaskErrors could mask, or leak, another request's errors).
    # The parse and validation caches live at module level, shared by every request; their size bounds
    # the memory that distinct query texts can take.
    extensions: list = [partial(AddValidationRules, limits)]
    if settings.graphql_cache_size:
        extensions += [
            partial(ParserCache, maxsize=settings.graphql_cache_size),
            partial(ValidationCache, maxsize=settings.graphql_cache_size),
        ]
    if settings.production:
        extensions.append(partial(MaskErrors, should_mask_error=_mask))
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        extensions=extensions,
        config=StrawberryConfig(disable_field_suggestions=True),
        types=[ValidationError, NotFoundError, ConflictError, PermissionDeniedError],
    )

"""IDs in the API: parsing what a caller sent, and writing what the API gives out."""

from __future__ import annotations

import uuid

import strawberry

from api.services.errors import NotFound

__all__ = ["opt_id", "optional_id", "parse_id", "require_id", "require_ids"]


def parse_id(value: object) -> uuid.UUID | None:
    """An ID the API gave out, or None for anything else (answered as 'does not exist')."""
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def require_id(value: strawberry.ID, what: str, field: str) -> uuid.UUID:
    """An input ID, or the refusal a mutation gives for an object that does not exist."""
    parsed = parse_id(value)
    if parsed is None:
        raise NotFound(what, value, field=field)
    return parsed


def optional_id(value: strawberry.ID | None, what: str, field: str) -> uuid.UUID | None:
    return None if value is None else require_id(value, what, field)


def require_ids(values: list[strawberry.ID] | None, what: str, field: str) -> list[uuid.UUID] | None:
    return None if values is None else [require_id(value, what, field) for value in values]


def opt_id(value: object) -> strawberry.ID | None:
    return None if value is None else strawberry.ID(str(value))

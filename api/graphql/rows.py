"""Building GraphQL objects from rows: a field takes the row's attribute of the same name unless given."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any, TypeVar

import strawberry

__all__ = ["from_row"]

T = TypeVar("T")


def from_row(cls: type[T], row: object, **given: Any) -> T:
    """An instance of a Strawberry type whose plain fields are copied from the row's attributes of the same
    name (UUIDs become IDs); fields named in `given` take that value instead. Fields with resolvers are not
    copied: they resolve from the object."""
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        if not field.init or field.name in given:
            continue
        value = getattr(row, field.name)
        values[field.name] = strawberry.ID(str(value)) if isinstance(value, uuid.UUID) else value
    return cls(**values, **given)

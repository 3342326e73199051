"""Scalars that replace Strawberry's defaults: a Decimal whose text is bounded before it is parsed."""

from __future__ import annotations

import decimal
from typing import Any

from graphql import FloatValueNode, IntValueNode, StringValueNode, ValueNode
from strawberry.exceptions import StrawberryInputCoercionError
from strawberry.types.scalar import ScalarDefinition

from api.domain.inputs import DECIMAL_MAX_LENGTH

__all__ = ["SCALAR_OVERRIDES", "parse_decimal", "parse_decimal_literal"]


def parse_decimal(value: object) -> decimal.Decimal:
    """A Decimal from its text (or a JSON number): text longer than DECIMAL_MAX_LENGTH characters is refused
    before decimal parsing sees it. What the number may be (finite, its magnitude, its decimals) is for the
    service that takes it, which names the field in a typed error."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise StrawberryInputCoercionError("Value cannot represent a Decimal: expected a number written as a string.")
    text = value if isinstance(value, str) else str(value)
    if len(text) > DECIMAL_MAX_LENGTH:
        raise StrawberryInputCoercionError(
            f"Value cannot represent a Decimal: {len(text)} characters, at most {DECIMAL_MAX_LENGTH}."
        )
    try:
        return decimal.Decimal(text)
    except decimal.DecimalException:
        raise StrawberryInputCoercionError(f'Value cannot represent a Decimal: "{text}".') from None


def parse_decimal_literal(node: ValueNode, variables: dict[str, Any] | None = None) -> decimal.Decimal:
    """A Decimal written in the query itself: its text as written, so neither a float ("1e1000000" would
    be infinity) nor a Python int (thousands of digits) is made of it first."""
    if isinstance(node, StringValueNode | IntValueNode | FloatValueNode):
        return parse_decimal(node.value)
    raise StrawberryInputCoercionError("Value cannot represent a Decimal: expected a number written as a string.")


# Same name and description as Strawberry's own, so the schema is unchanged.
DecimalScalar = ScalarDefinition(
    name="Decimal",
    description="Decimal (fixed-point)",
    specified_by_url=None,
    serialize=str,
    parse_value=parse_decimal,
    parse_literal=parse_decimal_literal,
    origin=decimal.Decimal,
)

SCALAR_OVERRIDES = {decimal.Decimal: DecimalScalar}

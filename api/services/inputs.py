"""The input rules of `api.domain.inputs` as the services apply them: with the limits of the settings, and
every refusal a ValidationFailed naming the field, raised before anything is read or written."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Any, ParamSpec, TypeVar

from api.config import Settings
from api.domain import inputs as rules
from api.domain.inputs import InputRefused, Limits, TextRule
from api.services.context import AppContext
from api.services.errors import ValidationFailed

__all__ = [
    "day",
    "decimal",
    "instant",
    "items",
    "limits",
    "optional_day",
    "optional_instant",
    "optional_text",
    "settings_limits",
    "term",
    "text",
]

P = ParamSpec("P")
R = TypeVar("R")


def _refusing(rule: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(rule)
    def checked(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return rule(*args, **kwargs)
        except InputRefused as refused:
            raise ValidationFailed(refused.message, field=refused.field) from None

    return checked


def settings_limits(settings: Settings) -> Limits:
    """The limits the settings configure (the command line reads program files before it has a context)."""
    return Limits(
        note=settings.max_note_length,
        text=settings.max_text_length,
        earliest=settings.earliest_date,
        latest=settings.latest_date,
        term_years=settings.max_term_years,
        program_depth=settings.program_max_depth,
        program_size=settings.program_max_size,
    )


def limits(ctx: AppContext) -> Limits:
    return settings_limits(ctx.settings)


@_refusing
def text(ctx: AppContext, value: object, field: str, *, rule: TextRule | None = None) -> str:
    """Text of at most the field's length holding only characters the field allows (`api.domain.inputs.FIELDS`)."""
    return rules.check_text(value, field, limits(ctx), rule=rule)


def optional_text(ctx: AppContext, value: str | None, field: str) -> str | None:
    return None if value is None else text(ctx, value, field)


@_refusing
def items(values: Iterable[Any], field: str, *, most: int) -> list[Any]:
    return rules.check_items(values, field, most)


@_refusing
def decimal(value: object, field: str, *, label: str | None = None) -> Decimal:
    """A finite number, bounded in length, digits and magnitude, before any arithmetic with it."""
    return rules.check_decimal(value, field, label=label)


@_refusing
def day(ctx: AppContext, value: object, field: str) -> date:
    return rules.check_day(value, field, limits(ctx))


def optional_day(ctx: AppContext, value: date | None, field: str) -> date | None:
    return None if value is None else day(ctx, value, field)


@_refusing
def instant(ctx: AppContext, value: object, field: str) -> datetime:
    return rules.check_instant(value, field, limits(ctx))


def optional_instant(ctx: AppContext, value: datetime | None, field: str) -> datetime | None:
    return None if value is None else instant(ctx, value, field)


@_refusing
def term(ctx: AppContext, effective_date: object, end_date: object) -> tuple[date, date]:
    """A contract term (fields effectiveDate, endDate): sane days, in order, at most the longest term."""
    return rules.check_term(effective_date, end_date, limits(ctx))

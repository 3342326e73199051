"""Typed mutation errors: every refusal of the service layer becomes one of these, never a stack trace."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Union

import strawberry

from api.services import errors as service_errors

__all__ = [
    "ActivityNotInCatalogError",
    "AddOnNotOfferedError",
    "OnCallDateError",
    "RateOutOfRangeError",
    "BookingDateError",
    "ConflictError",
    "ContractInactiveError",
    "ErrorCodeEnum",
    "InsufficientBalanceError",
    "NotFoundError",
    "OutOfScopeError",
    "PartnerNotEligibleError",
    "PeriodEndedError",
    "PermissionDeniedError",
    "UserError",
    "ValidationError",
    "mutation",
    "result_union",
    "user_error",
]

ErrorCodeEnum = strawberry.enum(service_errors.ErrorCode, name="ErrorCode")


@strawberry.interface(description="A refusal: what was wrong, which input it concerns, and a stable code.")
class UserError:
    code: ErrorCodeEnum
    message: str
    field: str | None = strawberry.field(description="The input field at fault, in the API's names.")


@strawberry.type(description="An input was malformed or breaks a rule of the program.")
class ValidationError(UserError):
    pass


@strawberry.type(description="The object does not exist, or is outside what the caller may see.")
class NotFoundError(UserError):
    pass


@strawberry.type(description="The change clashes with existing data (duplicate, already reversed, key reused).")
class ConflictError(UserError):
    pass


@strawberry.type(description="The caller may not take this action.")
class PermissionDeniedError(UserError):
    pass


@strawberry.type(description="The period has too little left; nothing was consumed.")
class InsufficientBalanceError(UserError):
    requested: int
    remaining: int


@strawberry.type(description="The period the request belongs to has ended; its unused units expired.")
class PeriodEndedError(UserError):
    pass


@strawberry.type(description="The contract is not in force on the date given.")
class ContractInactiveError(UserError):
    pass


@strawberry.type(
    description="The request is outside what the provider supports: the customer is not one the caller acts for, "
    "or the request is about something the terms list as out of scope or out of support."
)
class OutOfScopeError(UserError):
    pass


@strawberry.type(
    description="The ticket type is given only to a partner that meets the program's conditions "
    "(certification, access to the customer's production account); the message says which one is missing."
)
class PartnerNotEligibleError(UserError):
    pass


@strawberry.type(description="The activity is not in the contract's catalog; `available` lists what it may book.")
class ActivityNotInCatalogError(UserError):
    available: list[str]


@strawberry.type(
    description="A booking's date is in the past (DATE_IN_PAST), outside the period it is charged to "
    "(OUTSIDE_PERIOD) or outside the contract's term (BEFORE_CONTRACT_START, AFTER_CONTRACT_END); it must fall "
    "from `earliest` to `latest`."
)
class BookingDateError(UserError):
    earliest: date
    latest: date


@strawberry.type(
    description="An on-call day is in the past (DATE_IN_PAST) or outside the contract's term "
    "(BEFORE_CONTRACT_START, AFTER_CONTRACT_END); days must fall from `earliest` to `latest`."
)
class OnCallDateError(UserError):
    earliest: date
    latest: date


@strawberry.type(description="The contract's plan has no such add-on; `available` lists the add-ons it has.")
class AddOnNotOfferedError(UserError):
    available: list[str]


@strawberry.type(description="A price outside the range the plan states, from `minimum` to `maximum` in `currency`.")
class RateOutOfRangeError(UserError):
    minimum: Decimal
    maximum: Decimal
    currency: str


_BY_CODE: dict[service_errors.ErrorCode, type[UserError]] = {
    service_errors.ErrorCode.PARTNER_NOT_ELIGIBLE: PartnerNotEligibleError,
}

_BY_CLASS: list[tuple[type[service_errors.DomainError], type[UserError]]] = [
    (service_errors.InsufficientBalance, InsufficientBalanceError),
    (service_errors.NotInCatalog, ActivityNotInCatalogError),
    (service_errors.OnCallDateRefused, OnCallDateError),
    (service_errors.BookingDateRefused, BookingDateError),
    (service_errors.AddOnNotOffered, AddOnNotOfferedError),
    (service_errors.RateOutOfRange, RateOutOfRangeError),
    (service_errors.PeriodEnded, PeriodEndedError),
    (service_errors.ContractInactive, ContractInactiveError),
    (service_errors.NotFound, NotFoundError),
    (service_errors.Conflict, ConflictError),
    (service_errors.PermissionDenied, PermissionDeniedError),
    (service_errors.OutOfScope, OutOfScopeError),
    (service_errors.DomainError, ValidationError),
]


# The fields an error type carries beyond code, message and field, read off the refusal.
_EXTRA: dict[type[UserError], tuple[str, ...]] = {
    InsufficientBalanceError: ("requested", "remaining"),
    ActivityNotInCatalogError: ("available",),
    BookingDateError: ("earliest", "latest"),
    OnCallDateError: ("earliest", "latest"),
    AddOnNotOfferedError: ("available",),
    RateOutOfRangeError: ("minimum", "maximum", "currency"),
}


def user_error(exc: service_errors.DomainError) -> UserError:
    by_code = _BY_CODE.get(exc.code)
    if by_code is not None:
        return by_code(code=exc.code, message=exc.message, field=exc.field)  # type: ignore[call-arg]
    for error_class, graphql_type in _BY_CLASS:
        if isinstance(exc, error_class):
            extra = {name: getattr(exc, name) for name in _EXTRA.get(graphql_type, ())}
            return graphql_type(code=exc.code, message=exc.message, field=exc.field, **extra)  # type: ignore[call-arg]
    raise TypeError(exc)  # pragma: no cover - DomainError is the last row


def mutation(resolver: Callable[..., Awaitable[Any]] | None = None, /, **options: Any) -> Any:
    """`strawberry.mutation` for a resolver that parses its input and calls one service function: a refusal
    of the service layer (or of the input's ids) is returned as its typed error, which the resolver's
    declared result union must list."""

    def decorate(resolver: Callable[..., Awaitable[Any]]) -> Any:
        @functools.wraps(resolver)
        async def refusals_as_results(*args: Any, **kwargs: Any) -> Any:
            try:
                return await resolver(*args, **kwargs)
            except service_errors.DomainError as exc:
                return user_error(exc)

        return strawberry.mutation(**options)(refusals_as_results)

    return decorate if resolver is None else decorate(resolver)


def result_union(name: str, *members: type) -> Any:
    """A mutation's result: its success type, then every typed error it may return."""
    return Annotated[Union[members], strawberry.union(name)]  # noqa: UP007 - a union built from a tuple

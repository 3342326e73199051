"""Typed refusals raised by the service layer; every interface turns them into its own error shape."""

from __future__ import annotations

import enum
import re
from datetime import date
from decimal import Decimal
from typing import Any

from api.domain.inputs import refused_character

__all__ = [
    "AuthenticationFailed",
    "AddOnNotOffered",
    "BookingDateRefused",
    "Conflict",
    "ContractInactive",
    "DomainError",
    "ErrorCode",
    "InsufficientBalance",
    "NotFound",
    "NotInCatalog",
    "OnCallDateRefused",
    "OutOfScope",
    "PeriodEnded",
    "PermissionDenied",
    "RateOutOfRange",
    "TooManyAttempts",
    "ValidationFailed",
    "check_email",
]


class ErrorCode(enum.StrEnum):
    INVALID = "invalid"
    NOT_FOUND = "not_found"
    ALREADY_EXISTS = "already_exists"
    UNKNOWN_BUCKET = "unknown_bucket"
    NON_POSITIVE_QUANTITY = "non_positive_quantity"
    NOT_WHOLE_UNIT = "not_whole_unit"
    INSUFFICIENT_BALANCE = "insufficient_balance"
    PERIOD_ENDED = "period_ended"
    CONTRACT_INACTIVE = "contract_inactive"
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"
    ALREADY_REVERSED = "already_reversed"
    NOT_REVERSIBLE = "not_reversible"
    PROGRAM_IN_USE = "program_in_use"
    PERMISSION_DENIED = "permission_denied"
    OUT_OF_SCOPE = "out_of_scope"
    PARTNER_NOT_ELIGIBLE = "partner_not_eligible"
    UNAUTHENTICATED = "unauthenticated"
    THROTTLED = "throttled"
    ACTIVITY_NOT_IN_CATALOG = "activity_not_in_catalog"
    DATE_IN_PAST = "date_in_past"
    OUTSIDE_PERIOD = "outside_period"
    BEFORE_CONTRACT_START = "before_contract_start"
    AFTER_CONTRACT_END = "after_contract_end"
    WRONG_STATUS = "wrong_status"
    ADD_ON_NOT_OFFERED = "add_on_not_offered"
    RATE_OUT_OF_RANGE = "rate_out_of_range"
    NO_AVAILABILITY_TERMS = "no_availability_terms"
    TOO_LATE_TO_CANCEL = "too_late_to_cancel"


class DomainError(Exception):
    """A refusal with a code, a human message and, where one input is at fault, its field."""

    default_code = ErrorCode.INVALID

    def __init__(self, message: str, *, code: ErrorCode | None = None, field: str | None = None, **details: Any):
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.field = field
        self.details = details

    @property
    def extensions(self) -> dict[str, Any]:
        """What a GraphQL error for this refusal carries besides its message, where there is no typed result
        to give (a query): the code and the field at fault, in the API's names."""
        return {"code": self.code.name, "field": self.field}


class ValidationFailed(DomainError):
    default_code = ErrorCode.INVALID


class NotFound(DomainError):
    default_code = ErrorCode.NOT_FOUND

    def __init__(self, what: str, ident: object, *, field: str | None = None):
        shown = str(ident)
        shown = shown if len(shown) <= 100 else f"{shown[:100]}..."  # a refusal never echoes a long input whole
        super().__init__(f"{what} {shown} does not exist", field=field)


class Conflict(DomainError):
    default_code = ErrorCode.ALREADY_EXISTS


class PermissionDenied(DomainError):
    default_code = ErrorCode.PERMISSION_DENIED


class OutOfScope(DomainError):
    """The request is outside what the provider supports (the seeds' out-of-scope rules)."""

    default_code = ErrorCode.OUT_OF_SCOPE


class AuthenticationFailed(DomainError):
    """Credentials missing, wrong, expired or revoked. Interfaces answer 401."""

    default_code = ErrorCode.UNAUTHENTICATED


class TooManyAttempts(DomainError):
    """Too many failed logins from one source (for one account, or across accounts): this source must wait
    `retry_after_seconds` before its next attempt. Interfaces answer 429 with Retry-After."""

    default_code = ErrorCode.THROTTLED

    def __init__(self, message: str, *, retry_after_seconds: int):
        super().__init__(message, retry_after_seconds=retry_after_seconds)
        self.retry_after_seconds = retry_after_seconds


class InsufficientBalance(DomainError):
    default_code = ErrorCode.INSUFFICIENT_BALANCE

    def __init__(self, message: str, *, requested: int, remaining: int, field: str | None = "quantity"):
        super().__init__(message, field=field, requested=requested, remaining=remaining)
        self.requested = requested
        self.remaining = remaining


class PeriodEnded(DomainError):
    default_code = ErrorCode.PERIOD_ENDED


class ContractInactive(DomainError):
    default_code = ErrorCode.CONTRACT_INACTIVE


class NotInCatalog(DomainError):
    """The activity is not one the contract may book; `available` lists those it may."""

    default_code = ErrorCode.ACTIVITY_NOT_IN_CATALOG

    def __init__(self, message: str, *, available: list[str], field: str | None = "activity"):
        super().__init__(message, field=field, available=available)
        self.available = available


class BookingDateRefused(DomainError):
    """A booking's date is in the past, outside the period it is charged to, or outside the contract's
    term (the code says which); the date must fall from `earliest` to `latest`."""

    def __init__(self, message: str, *, code: ErrorCode, earliest: date, latest: date, field: str):
        super().__init__(message, code=code, field=field, earliest=earliest.isoformat(), latest=latest.isoformat())
        self.earliest = earliest
        self.latest = latest


class OnCallDateRefused(BookingDateRefused):
    """An on-call day is in the past or outside the contract's term (the code says which); days must fall
    from `earliest` to `latest`."""


class AddOnNotOffered(DomainError):
    """The contract's plan has no such add-on (e.g. no on-call readiness); `available` lists those it has."""

    default_code = ErrorCode.ADD_ON_NOT_OFFERED

    def __init__(self, message: str, *, available: list[str], field: str | None = "contractId"):
        super().__init__(message, field=field, available=available)
        self.available = available


class RateOutOfRange(DomainError):
    """A price outside the range the plan states; the message names the range with its currency."""

    default_code = ErrorCode.RATE_OUT_OF_RANGE

    def __init__(self, message: str, *, minimum: Decimal, maximum: Decimal, currency: str, field: str = "dayRate"):
        super().__init__(message, field=field, minimum=str(minimum), maximum=str(maximum), currency=currency)
        self.minimum = minimum
        self.maximum = maximum
        self.currency = currency


_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def check_email(value: str | None, *, field: str) -> None:
    """An optional e-mail address: absent, or plausible and short enough for its column."""
    if value is None:
        return
    if len(value) > 254:
        raise ValidationFailed(f"{value[:40]!r}... is not an e-mail address: it has more than 254 characters", field=field)
    if not _EMAIL.fullmatch(value) or refused_character(value, strict=True) is not None:
        raise ValidationFailed(f"{value!r} is not an e-mail address", field=field)

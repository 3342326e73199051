"""The program-file schema: what a vendor may say about its support program, validated."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "Activity",
    "AddOn",
    "Availability",
    "Bucket",
    "Calendar",
    "ClosedWindow",
    "CreditTier",
    "DeductionRules",
    "HolidaySource",
    "MeetingCommitment",
    "OpenWindow",
    "PartnerProgram",
    "Plan",
    "Program",
    "Reporting",
    "ScopeItem",
    "Severity",
    "Target",
    "TicketType",
    "TICKET_CATEGORIES",
    "WEEKDAYS",
]

Code = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
TICKET_CATEGORIES = (
    "incident",
    "problem",
    "service_request",
    "change",
    "question",
    "enablement",
    "feature_request",
    "integration_support",
    "developer_support",
    "product_support",
    "other",
)
_SPAN = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


def _check_span(span: str) -> str:
    match = _SPAN.match(span)
    if not match:
        raise ValueError(f"{span!r} is not a time span like '08:00-18:00'")
    start = int(match[1]) * 60 + int(match[2])
    end = int(match[3]) * 60 + int(match[4])
    if end > 24 * 60:
        raise ValueError(f"{span!r} ends after 24:00")
    if end <= start:
        raise ValueError(f"{span!r} must end after it starts")
    return span


Span = Annotated[str, Field(description="HH:MM-HH:MM, end may be 24:00")]


class HolidaySource(_Strict):
    """Public holidays taken from the `holidays` library, never typed in by hand."""

    country: str
    subdivision: str | None = None
    categories: tuple[str, ...] = ("public",)

    @model_validator(mode="after")
    def _known_country(self) -> HolidaySource:
        import holidays

        supported = holidays.list_supported_countries()
        if self.country not in supported:
            raise ValueError(f"country {self.country!r} is not supported by the holidays library")
        if self.subdivision is not None and self.subdivision not in supported[self.country]:
            raise ValueError(f"subdivision {self.subdivision!r} is not known for country {self.country!r}")
        try:
            holidays.country_holidays(
                self.country, subdiv=self.subdivision, years=2026, categories=self.categories
            )
        except NotImplementedError as exc:
            raise ValueError(f"holiday categories {list(self.categories)} are not available: {exc}") from exc
        return self


# Days computed per year from a rule (for open and closed windows alike):
# summer_weeks: the weekdays of a month (default July); christmas_to_new_year: weekdays 27-31 December;
# day_after_ascension; weekdays_before_easter: `count` working weekdays before Easter Sunday;
# weekends; public_holidays: the calendar's own public holidays.
WindowRule = Literal[
    "summer_weeks",
    "christmas_to_new_year",
    "day_after_ascension",
    "weekdays_before_easter",
    "weekends",
    "public_holidays",
]


class OpenWindow(_Strict):
    """Extra open time defined by a rule and computed per year (emergency cover)."""

    rule: WindowRule
    hours: tuple[Span, ...] = ("00:00-24:00",)
    month: int | None = Field(default=None, ge=1, le=12)
    count: int | None = Field(default=None, ge=1, le=10)
    description: str = ""

    @field_validator("hours")
    @classmethod
    def _spans(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_check_span(s) for s in value)


class ClosedWindow(_Strict):
    """Days a rule closes, computed per year (e.g. a vendor's office closes in the July holiday weeks);
    open windows still apply on them, so a higher tier's emergency cover can reopen them."""

    rule: WindowRule
    month: int | None = Field(default=None, ge=1, le=12)
    count: int | None = Field(default=None, ge=1, le=10)
    description: str = ""


class Calendar(_Strict):
    """When an SLA clock runs: a time zone, a weekly schedule, holidays and special windows."""

    name: str = ""
    timezone: str
    schedule: Literal["24/7", "24/5", "hours"]
    hours: dict[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], tuple[Span, ...]] = {}
    holidays: HolidaySource | None = None
    closed_dates: tuple[date, ...] = ()
    closed_windows: tuple[ClosedWindow, ...] = ()
    open_windows: tuple[OpenWindow, ...] = ()

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"{value!r} is not an IANA time zone") from exc
        return value

    @field_validator("hours")
    @classmethod
    def _spans(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for spans in value.values():
            for span in spans:
                _check_span(span)
        return value

    @model_validator(mode="after")
    def _hours_match_schedule(self) -> Calendar:
        if self.schedule == "hours" and not any(self.hours.values()):
            raise ValueError("schedule 'hours' needs an 'hours' table with at least one span")
        if self.schedule != "hours" and self.hours:
            raise ValueError(f"schedule {self.schedule!r} takes no 'hours' table")
        return self


class Bucket(_Strict):
    """An entitlement bucket: what a contract may consume per period."""

    name: str
    description: str = ""
    unit: Literal["activities", "hours"]
    # Per period, in the bucket's unit; "contract" means each contract sets its own (Custom plans).
    allowance: Decimal | Literal["contract"]
    allowance_per_year: Decimal | None = None
    period: Literal["quarter", "year"]
    anchor: Literal["contract", "calendar"]
    rollover: Literal["none"] = "none"
    # The smallest amount that may be consumed, in ledger units (activities, or minutes).
    increment: int = Field(default=1, ge=1)
    fair_use: bool = False
    best_effort: bool = False

    @property
    def periods_per_year(self) -> int:
        return 4 if self.period == "quarter" else 1

    @property
    def ledger_unit(self) -> str:
        return "minutes" if self.unit == "hours" else "activities"

    def to_ledger_units(self, amount: Decimal) -> Decimal:
        return amount * 60 if self.unit == "hours" else amount

    @model_validator(mode="after")
    def _consistent(self) -> Bucket:
        if self.allowance == "contract":
            if self.allowance_per_year is not None:
                raise ValueError("allowance_per_year cannot be fixed when the allowance is set per contract")
            return self
        if self.allowance <= 0:
            raise ValueError("allowance must be greater than 0")
        units = self.to_ledger_units(self.allowance)
        if units != units.to_integral_value():
            raise ValueError(f"allowance {self.allowance} {self.unit} is not a whole number of {self.ledger_unit}")
        if units % self.increment:
            raise ValueError(f"allowance is not a multiple of the increment ({self.increment} {self.ledger_unit})")
        if self.allowance_per_year is not None and self.allowance_per_year != self.allowance * self.periods_per_year:
            raise ValueError(
                f"allowance_per_year {self.allowance_per_year} is not {self.periods_per_year} x {self.allowance}"
            )
        return self


class Target(_Strict):
    """One SLA target: a duration of open time on a calendar, or 'as time permits'."""

    minutes: int | None = Field(default=None, gt=0)
    hours: Decimal | None = Field(default=None, gt=0)
    calendar: str | None = None
    as_time_permits: bool = False
    best_effort: bool = False
    description: str = ""

    @model_validator(mode="after")
    def _one_duration(self) -> Target:
        if self.as_time_permits:
            if self.minutes is not None or self.hours is not None:
                raise ValueError("a target 'as time permits' has no duration")
            return self
        if (self.minutes is None) == (self.hours is None):
            raise ValueError("give exactly one of 'minutes' or 'hours'")
        if self.hours is not None and (self.hours * 60) != (self.hours * 60).to_integral_value():
            raise ValueError(f"hours {self.hours} is not a whole number of minutes")
        if self.calendar is None:
            raise ValueError("a timed target needs a 'calendar'")
        return self

    @property
    def duration_minutes(self) -> int | None:
        if self.minutes is not None:
            return self.minutes
        if self.hours is not None:
            return int(self.hours * 60)
        return None


class Severity(_Strict):
    name: str
    description: str = ""
    rank: int = Field(ge=1, description="1 is the most severe")
    acknowledge: Target | None = None
    first_response: Target | None = None
    update_interval: Target | None = None
    # S1 updates: "every N minutes, or as stated in the last update"
    update_may_be_rescheduled: bool = False
    resolution: Target | None = None
    on_call: bool = False
    examples: tuple[str, ...] = ()


class TicketType(_Strict):
    name: str
    description: str = ""
    category: Literal[
        "incident",
        "problem",
        "service_request",
        "change",
        "question",
        "enablement",
        "feature_request",
        "integration_support",
        "developer_support",
        "product_support",
        "other",
    ]
    channels: tuple[str, ...] = ()
    guarantee: str = ""
    response_guarantee: bool = False
    priority_flag: bool = False
    needs_diagnosis: bool = False
    severities: tuple[str, ...] | None = None  # None: every severity of the plan
    requires_certified_partner: bool = False
    requires_production_access: bool = False


class DeductionRules(_Strict):
    """How logged support time turns into consumption of an hours bucket."""

    bucket: str
    minimum_minutes_per_conversation: int = Field(default=0, ge=0)
    exempt_categories: tuple[str, ...] = ()
    when_exhausted: Literal["refuse", "overage"] = "refuse"
    description: str = ""

    @field_validator("exempt_categories")
    @classmethod
    def _categories(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            if item not in TICKET_CATEGORIES:
                raise ValueError(f"{item!r} is not a ticket category ({', '.join(TICKET_CATEGORIES)})")
        return value


class CreditTier(_Strict):
    """Availability below `below` % and at or above `down_to` % earns `credit_percent`."""

    below: Decimal = Field(gt=0, le=100)
    down_to: Decimal = Field(default=Decimal(0), ge=0, lt=100)
    credit_percent: Decimal = Field(gt=0, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> CreditTier:
        if self.down_to >= self.below:
            raise ValueError(f"down_to {self.down_to} must be below {self.below}")
        return self


class Availability(_Strict):
    target_percent: Decimal = Field(gt=0, le=100)
    measured_over: Literal["calendar_month"] = "calendar_month"
    credit_basis: Literal["pro_rata_monthly_fee"] = "pro_rata_monthly_fee"
    credits: tuple[CreditTier, ...] = ()

    @model_validator(mode="after")
    def _tiers_tile(self) -> Availability:
        expected = self.target_percent
        for index, tier in enumerate(self.credits):
            if tier.below != expected:
                raise ValueError(
                    f"credits[{index}] starts below {tier.below}, expected {expected}: tiers must be contiguous"
                )
            expected = tier.down_to
        if self.credits and expected != 0:
            raise ValueError(f"the last credit tier must go down to 0, not {expected}")
        return self


class ScopeItem(_Strict):
    code: Code
    text: str


class Activity(_Strict):
    """An entry of the activity / expert-service catalog."""

    name: str
    description: str = ""
    category: str = ""
    deliverables: tuple[str, ...] = ()
    unit: Literal["activities", "hours"] = "activities"
    size: Decimal = Field(gt=0, description="in small activities, or hours")


class AddOn(_Strict):
    """Something ordered separately, priced per unit (e.g. on-call readiness per consultant-day)."""

    name: str
    description: str = ""
    unit: str
    price_min: Decimal = Field(ge=0)
    price_max: Decimal = Field(ge=0)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    response_minutes: int | None = Field(default=None, gt=0)
    windows: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _range(self) -> AddOn:
        if self.price_max < self.price_min:
            raise ValueError("price_max is below price_min")
        return self


class MeetingCommitment(_Strict):
    name: str
    description: str = ""
    per: Literal["quarter", "year"]
    min: int = Field(ge=0)
    max: int = Field(ge=1)

    @model_validator(mode="after")
    def _range(self) -> MeetingCommitment:
        if self.max < self.min:
            raise ValueError("max is below min")
        return self


class Reporting(_Strict):
    consumption_report: Literal["monthly", "none"] = "monthly"
    operational_report: tuple[Literal["weekly", "monthly"], ...] = ()
    contents: tuple[str, ...] = ()


class Plan(_Strict):
    name: str = Field(max_length=200)
    description: str = ""
    extends: str | None = None
    buckets: dict[Code, Bucket] = {}
    calendar: str | None = None  # the plan's business-hours calendar, where it has one
    channels: tuple[str, ...] = ()
    response_guarantee: bool = False
    sla: bool = True
    severities: dict[Code, Severity] = {}
    ticket_types: dict[Code, TicketType] = {}
    deductions: DeductionRules | None = None
    availability: Availability | None = None
    catalog: tuple[str, ...] | None = None  # None: the whole program catalog
    # Where two buckets count the same unit, the one catalog activities in that unit are charged to.
    catalog_bucket: Code | None = None
    # Days before a period ends with units left from which it is "expiring soon" and a reminder goes
    # out; None: the deployment's ENTITLE_EXPIRY_WARNING_DAYS.
    expiry_warning_days: int | None = Field(default=None, ge=0, le=366)
    features: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()  # what the plan explicitly does not give
    add_ons: dict[Code, AddOn] = {}
    meetings: dict[Code, MeetingCommitment] = {}
    reporting: Reporting = Reporting()
    out_of_scope: tuple[ScopeItem, ...] = ()
    out_of_support: tuple[ScopeItem, ...] = ()


class PartnerProgram(_Strict):
    """Rules for solution partners acting for their customers."""

    name: str = "Solution partners"
    description: str = ""
    intermediated: bool = True
    integration_support_requires_certification: bool = True
    integration_support_requires_production_access: bool = True
    integration_support_refusal: str = ""
    non_partner_refusal: str = ""
    out_of_scope: tuple[ScopeItem, ...] = ()


class Program(_Strict):
    code: Code
    name: str = Field(max_length=200)
    provider: str = Field(max_length=200)
    description: str = ""
    version: str = Field(default="1", max_length=40)
    timezone: str = "UTC"
    currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")
    language: str = "en"
    remote_only: bool = False
    calendars: dict[Code, Calendar] = {}
    catalog: dict[Code, Activity] = {}
    plans: dict[Code, Plan]
    partners: PartnerProgram | None = None
    out_of_scope: tuple[ScopeItem, ...] = ()
    out_of_support: tuple[ScopeItem, ...] = ()

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return Calendar._zone(value)

    @field_validator("plans")
    @classmethod
    def _some_plans(cls, value: dict[str, Plan]) -> dict[str, Plan]:
        if not value:
            raise ValueError("a program needs at least one plan")
        return value

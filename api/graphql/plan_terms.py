"""GraphQL of a plan's terms: severities and SLA targets, ticket types, calendars, deductions, credits, commitments."""

from __future__ import annotations

import enum
from datetime import date
from decimal import Decimal

import strawberry
from pydantic import BaseModel

from api.programs.schema import (
    TICKET_CATEGORIES,
    WEEKDAYS,
    AddOn,
    Calendar,
    ClosedWindow,
    CreditTier,
    OpenWindow,
    Plan,
    Program,
    Target,
    TicketType,
)
from api.services.programs import PlanView
from api.services.tickets import DIAGNOSIS_FIELDS

__all__ = [
    "AddOnType",
    "AvailabilityMeasure",
    "AvailabilityType",
    "CalendarSchedule",
    "CalendarWindowType",
    "CommitmentPeriod",
    "CreditBasis",
    "CreditTierType",
    "DeductionRulesType",
    "MeetingCommitmentType",
    "PlanTerms",
    "PublicHolidaysType",
    "ReportFrequency",
    "ReportingType",
    "ScopeSource",
    "ScopeTermType",
    "SeverityType",
    "SlaTargetType",
    "SupportCalendarType",
    "TicketCategory",
    "TicketTypeType",
    "Weekday",
    "WeekdayHoursType",
    "WhenExhausted",
    "WindowRule",
]


def _copy(model: BaseModel, *names: str) -> dict[str, object]:
    """Fields the API gives as the program file has them, tuples as lists."""
    values = {name: getattr(model, name) for name in names}
    return {name: list(v) if isinstance(v, tuple) else v for name, v in values.items()}


def _enum(name: str, values: tuple[str, ...], description: str) -> type[enum.Enum]:
    """A GraphQL enum of a closed set of the program schema: each value, upper-cased."""
    return strawberry.enum(enum.Enum(name, {value.upper(): value for value in values}), description=description)


TicketCategory = _enum(
    "TicketCategory", TICKET_CATEGORIES, "What kind of request a ticket type is; deduction rules exempt categories."
)
WindowRule = _enum(
    "WindowRule",
    (
        "summer_weeks",
        "christmas_to_new_year",
        "day_after_ascension",
        "weekdays_before_easter",
        "weekends",
        "public_holidays",
    ),
    "Which days a calendar window covers, computed for each year.",
)
WhenExhausted = _enum(
    "WhenExhausted", ("overage", "refuse"), "What happens to support time once the deducted bucket's period is used up."
)
AvailabilityMeasure = _enum("AvailabilityMeasure", ("calendar_month",), "The period availability is measured over.")
CreditBasis = _enum("CreditBasis", ("pro_rata_monthly_fee",), "What a service credit is a percentage of.")
CommitmentPeriod = _enum("CommitmentPeriod", ("quarter", "year"), "How often a commitment counts.")
ReportFrequency = _enum("ReportFrequency", ("none", "weekly", "monthly"), "How often a report is sent; NONE: never.")
ScopeSource = _enum(
    "ScopeSource", ("plan", "program", "partner_program"), "Which list an out-of-scope or out-of-support item is from."
)


@strawberry.enum(description="A calendar's weekly schedule: around the clock, weekdays around the clock, or hours.")
class CalendarSchedule(enum.Enum):
    TWENTY_FOUR_SEVEN = "24/7"
    TWENTY_FOUR_FIVE = "24/5"
    HOURS = "hours"


@strawberry.enum
class Weekday(enum.Enum):
    MONDAY = "mon"
    TUESDAY = "tue"
    WEDNESDAY = "wed"
    THURSDAY = "thu"
    FRIDAY = "fri"
    SATURDAY = "sat"
    SUNDAY = "sun"


@strawberry.type(name="SlaTarget", description="One SLA target: open time on a support calendar, or as time permits.")
class SlaTargetType:
    minutes: int | None = strawberry.field(description="Open time allowed, in minutes; null when as time permits.")
    calendar: str | None = strawberry.field(description="The code of the support calendar whose open time counts.")
    as_time_permits: bool = strawberry.field(description="No duration is promised: done when time allows.")
    best_effort: bool
    description: str

    @classmethod
    def build(cls, target: Target | None) -> SlaTargetType | None:
        if target is None:
            return None
        return cls(
            minutes=target.duration_minutes,
            **_copy(target, "calendar", "as_time_permits", "best_effort", "description"),
        )


@strawberry.type(name="Severity", description="A severity of a plan with its SLA targets; rank 1 is the most severe.")
class SeverityType:
    code: str
    name: str
    description: str
    rank: int
    acknowledge: SlaTargetType | None = strawberry.field(description="Until a person acknowledges the ticket.")
    first_response: SlaTargetType | None = strawberry.field(
        description="Until the first reply written by a person; automatic messages never count."
    )
    update_interval: SlaTargetType | None = strawberry.field(description="Between progress updates while it lasts.")
    resolution: SlaTargetType | None = strawberry.field(description="Until the ticket is resolved.")
    update_may_be_rescheduled: bool = strawberry.field(
        description="An update may name a different time for the next one, and the update clock follows it."
    )
    on_call: bool = strawberry.field(description="An on-call team is alerted day and night.")
    examples: list[str]


@strawberry.type(name="TicketType", description="A kind of ticket, and what filing one takes under this plan.")
class TicketTypeType:
    code: str
    name: str
    description: str
    category: TicketCategory
    allowed: bool = strawberry.field(
        description="Whether this plan offers the type. The program's types that other plans offer are listed "
        "too, not allowed, with the definition of the first plan offering them."
    )
    channels: list[str] = strawberry.field(description="Where a ticket of this type is raised.")
    guarantee: str = strawberry.field(description="What is promised about the answer, in the program's words.")
    response_guarantee: bool
    priority_flag: bool = strawberry.field(description="Tickets of this type are flagged as priority.")
    needs_diagnosis: bool
    diagnosis_fields: list[str] = strawberry.field(
        description="The fileTicket inputs a ticket of this type cannot be filed without; empty when none."
    )
    incident: bool = strawberry.field(description="The type's category is incident.")
    deducted: bool = strawberry.field(
        description="Whether support time on it is deducted from the plan's hours: never for a category the "
        "deduction rules exempt (incidents), nor on a plan without deduction rules, nor when not allowed."
    )
    severities: list[str] = strawberry.field(
        description="The severity codes a ticket of this type may be filed with, most severe first; empty when "
        "it is filed without a severity (and has no SLA clocks) or is not allowed."
    )
    requires_certified_partner: bool = strawberry.field(
        description="Filed only by a partner whose certification is valid (or by the provider), never by the customer."
    )
    requires_production_access: bool = strawberry.field(
        description="Filed only by a partner with access to the customer's production account."
    )


@strawberry.type(name="WeekdayHours", description="A weekday's open hours, before holidays and windows.")
class WeekdayHoursType:
    weekday: Weekday
    spans: list[str] = strawberry.field(
        description="Local times 'HH:MM-HH:MM', the end may be 24:00; empty when closed that day."
    )


@strawberry.type(name="PublicHolidays", description="Public holidays from the `holidays` library, closed all day.")
class PublicHolidaysType:
    country: str = strawberry.field(description="ISO 3166 alpha-2 country code.")
    subdivision: str | None = strawberry.field(description="The country's subdivision (region), if any.")
    categories: list[str] = strawberry.field(description="The library's holiday categories taken, e.g. public.")


@strawberry.type(name="CalendarWindow", description="Days a rule covers each year, and what it does to them.")
class CalendarWindowType:
    rule: WindowRule
    month: int | None = strawberry.field(description="The month of SUMMER_WEEKS (July unless the program says).")
    count: int | None = strawberry.field(description="The working days WEEKDAYS_BEFORE_EASTER covers (3 unless said).")
    hours: list[str] = strawberry.field(
        description="An open window: the local spans it adds on its days, even on holidays. A closed window: "
        "empty, it removes the weekly hours of its days."
    )
    description: str

    @classmethod
    def build(cls, window: OpenWindow | ClosedWindow) -> CalendarWindowType:
        month, count = window.month, window.count
        if window.rule == "summer_weeks":
            month = month or 7
        if window.rule == "weekdays_before_easter":
            count = count or 3
        hours = list(window.hours) if isinstance(window, OpenWindow) else []
        return cls(rule=WindowRule(window.rule), month=month, count=count, hours=hours, description=window.description)


@strawberry.type(name="SupportCalendar", description="When an SLA clock runs.")
class SupportCalendarType:
    code: str
    name: str
    timezone: str = strawberry.field(description="IANA time zone, e.g. Europe/Copenhagen.")
    schedule: CalendarSchedule
    weekly_hours: list[WeekdayHoursType] = strawberry.field(
        description="Monday to Sunday, as the schedule gives them (24/7 and 24/5 included)."
    )
    holidays: PublicHolidaysType | None
    closed_dates: list[date] = strawberry.field(description="Days closed whole, whatever else applies.")
    closed_windows: list[CalendarWindowType]
    open_windows: list[CalendarWindowType]

    @classmethod
    def build(cls, code: str, calendar: Calendar) -> SupportCalendarType:
        def spans(index: int, day: str) -> list[str]:
            if calendar.schedule == "24/7" or (calendar.schedule == "24/5" and index < 5):
                return ["00:00-24:00"]
            return list(calendar.hours.get(day, ()))  # type: ignore[call-overload]

        source = calendar.holidays
        return cls(
            code=code,
            name=calendar.name,
            timezone=calendar.timezone,
            schedule=CalendarSchedule(calendar.schedule),
            weekly_hours=[WeekdayHoursType(weekday=Weekday(d), spans=spans(i, d)) for i, d in enumerate(WEEKDAYS)],
            holidays=None
            if source is None
            else PublicHolidaysType(
                country=source.country, subdivision=source.subdivision, categories=list(source.categories)
            ),
            closed_dates=list(calendar.closed_dates),
            closed_windows=[CalendarWindowType.build(w) for w in calendar.closed_windows],
            open_windows=[CalendarWindowType.build(w) for w in calendar.open_windows],
        )


@strawberry.type(name="DeductionRules", description="How logged support time becomes consumption of an hours bucket.")
class DeductionRulesType:
    bucket: str = strawberry.field(description="The code of the hours bucket deducted from.")
    minimum_minutes_per_conversation: int = strawberry.field(
        description="What a ticket owes at least once a person on the provider's side has replied."
    )
    exempt_categories: list[TicketCategory] = strawberry.field(description="Ticket categories never deducted.")
    when_exhausted: WhenExhausted
    description: str


@strawberry.type(
    name="CreditTier",
    description="A service-credit tier: a month's availability below `below` % and at least `downTo` % earns "
    "`creditPercent` % of the credit basis.",
)
class CreditTierType:
    below: Decimal
    down_to: Decimal
    credit_percent: Decimal


@strawberry.type(name="Availability", description="An availability commitment backed by service credits.")
class AvailabilityType:
    target_percent: Decimal
    measured_over: AvailabilityMeasure
    credit_basis: CreditBasis
    credits: list[CreditTierType] = strawberry.field(description="Contiguous tiers from the target down to 0 %.")


@strawberry.type(name="ScopeTerm", description="What the provider does not do; requests about it are refused.")
class ScopeTermType:
    code: str = strawberry.field(description="What fileTicket's scopeItem names.")
    text: str
    source: ScopeSource


@strawberry.type(name="AddOn", description="Something ordered separately, priced per unit.")
class AddOnType:
    code: str
    name: str
    description: str
    unit: str = strawberry.field(description="What one is, e.g. consultant-day.")
    price_min: Decimal
    price_max: Decimal
    currency: str = strawberry.field(description="ISO 4217, e.g. DKK.")
    response_minutes: int | None = strawberry.field(description="The response promised while it runs, if any.")
    windows: list[str] = strawberry.field(description="When it can be booked, e.g. evenings, weekends.")


@strawberry.type(name="MeetingCommitment", description="Meetings the provider holds with the customer.")
class MeetingCommitmentType:
    code: str
    name: str
    description: str
    per: CommitmentPeriod
    min: int = strawberry.field(description="At least this many per period.")
    max: int = strawberry.field(description="At most this many per period.")


@strawberry.type(name="Reporting", description="The reports the provider sends.")
class ReportingType:
    consumption_report: ReportFrequency = strawberry.field(description="Consumption per bucket: MONTHLY or NONE.")
    operational_report: list[ReportFrequency] = strawberry.field(description="Operational status reports sent.")
    contents: list[str] = strawberry.field(description="What the operational reports hold.")


_TARGETS = ("acknowledge", "first_response", "update_interval", "resolution")


def _ticket_type(code: str, offered: TicketType, plan: Plan, allowed: bool) -> TicketTypeType:
    rules = plan.deductions
    severities: list[str] = []
    if allowed:
        codes = offered.severities if offered.severities is not None else tuple(plan.severities)
        severities = sorted(codes, key=lambda s: plan.severities[s].rank)
    return TicketTypeType(
        code=code,
        category=TicketCategory(offered.category),
        allowed=allowed,
        diagnosis_fields=[field for _, field, _ in DIAGNOSIS_FIELDS] if offered.needs_diagnosis else [],
        incident=offered.category == "incident",
        deducted=allowed and rules is not None and offered.category not in rules.exempt_categories,
        severities=severities,
        **_copy(
            offered,
            "name",
            "description",
            "channels",
            "guarantee",
            "response_guarantee",
            "priority_flag",
            "needs_diagnosis",
            "requires_certified_partner",
            "requires_production_access",
        ),
    )


def _ticket_types(program: Program, plan: Plan) -> list[TicketTypeType]:
    """The plan's types, then those of the program's other plans that it does not offer."""
    found = [_ticket_type(code, t, plan, True) for code, t in plan.ticket_types.items()]
    seen = set(plan.ticket_types)
    for other in program.plans.values():
        for code, offered in other.ticket_types.items():
            if code not in seen:
                seen.add(code)
                found.append(_ticket_type(code, offered, plan, False))
    return found


def _severity(code: str, plan: Plan) -> SeverityType:
    s = plan.severities[code]
    return SeverityType(
        code=code,
        **{name: SlaTargetType.build(getattr(s, name)) for name in _TARGETS},
        **_copy(s, "name", "description", "rank", "update_may_be_rescheduled", "on_call", "examples"),
    )


def _calendars(program: Program, plan: Plan) -> list[SupportCalendarType]:
    """The calendars the plan's targets and its own business hours run on, in the program's order."""
    used = {plan.calendar}
    for s in plan.severities.values():
        used |= {target.calendar for target in (getattr(s, name) for name in _TARGETS) if target is not None}
    return [SupportCalendarType.build(code, cal) for code, cal in program.calendars.items() if code in used]


def _scope(program: Program, plan: Plan, list_name: str) -> list[ScopeTermType]:
    """Every list filing checks a scopeItem against (see tickets._check_scope), each with its source."""
    sources = [(ScopeSource.PLAN, getattr(plan, list_name)), (ScopeSource.PROGRAM, getattr(program, list_name))]
    if list_name == "out_of_scope" and program.partners is not None:
        sources.append((ScopeSource.PARTNER_PROGRAM, program.partners.out_of_scope))
    return [ScopeTermType(code=i.code, text=i.text, source=source) for source, items in sources for i in items]


@strawberry.type(description="Every term of a plan, read from its loaded program; the base of Plan.")
class PlanTerms:
    severities: list[SeverityType] = strawberry.field(description="The plan's severities, most severe first.")
    ticket_types: list[TicketTypeType] = strawberry.field(
        description="The ticket types the plan offers (allowed), then the program's others (not allowed)."
    )
    calendars: list[SupportCalendarType] = strawberry.field(
        description="The support calendars the plan's SLA targets and business hours run on."
    )
    calendar: str | None = strawberry.field(description="The code of the plan's business-hours calendar, if any.")
    deductions: DeductionRulesType | None = strawberry.field(
        description="How support time is deducted from an hours bucket; null when nothing is deducted."
    )
    availability: AvailabilityType | None = strawberry.field(description="Null when the plan commits to none.")
    out_of_scope: list[ScopeTermType] = strawberry.field(
        description="What is out of scope: the plan's list, its program's and its partner program's."
    )
    out_of_support: list[ScopeTermType] = strawberry.field(
        description="What is out of support: the plan's list and its program's."
    )
    add_ons: list[AddOnType]
    meetings: list[MeetingCommitmentType]
    reporting: ReportingType
    channels: list[str] = strawberry.field(description="Where requests are raised, e.g. hotline, service-portal.")
    response_guarantee: bool = strawberry.field(description="Whether the plan guarantees a response time.")
    features: list[str]
    excluded: list[str] = strawberry.field(description="What the plan explicitly does not give.")
    catalog_bucket: str | None = strawberry.field(
        description="Where two buckets count the same unit, the one catalog activities are charged to."
    )
    expiry_warning_days: int | None = strawberry.field(
        description="Days before a period ends from which units left are expiring soon; null: the deployment's "
        "default (ENTITLE_EXPIRY_WARNING_DAYS)."
    )

    @staticmethod
    def terms(view: PlanView) -> dict[str, object]:
        """The keyword arguments of PlanTerms (and of any subclass) for one loaded plan."""
        plan, program = view.rules, view.program
        rules, availability, reporting = plan.deductions, plan.availability, plan.reporting
        return {
            "severities": [_severity(c, plan) for c in sorted(plan.severities, key=lambda c: plan.severities[c].rank)],
            "ticket_types": _ticket_types(program, plan),
            "calendars": _calendars(program, plan),
            "deductions": None
            if rules is None
            else DeductionRulesType(
                exempt_categories=[TicketCategory(c) for c in rules.exempt_categories],
                when_exhausted=WhenExhausted(rules.when_exhausted),
                **_copy(rules, "bucket", "minimum_minutes_per_conversation", "description"),
            ),
            "availability": None
            if availability is None
            else AvailabilityType(
                target_percent=availability.target_percent,
                measured_over=AvailabilityMeasure(availability.measured_over),
                credit_basis=CreditBasis(availability.credit_basis),
                credits=[CreditTierType(**_copy(t, *CreditTier.model_fields)) for t in availability.credits],
            ),
            "out_of_scope": _scope(program, plan, "out_of_scope"),
            "out_of_support": _scope(program, plan, "out_of_support"),
            "add_ons": [AddOnType(code=code, **_copy(a, *AddOn.model_fields)) for code, a in plan.add_ons.items()],
            "meetings": [
                MeetingCommitmentType(
                    code=code, per=CommitmentPeriod(m.per), **_copy(m, "name", "description", "min", "max")
                )
                for code, m in plan.meetings.items()
            ],
            "reporting": ReportingType(
                consumption_report=ReportFrequency(reporting.consumption_report),
                operational_report=[ReportFrequency(r) for r in reporting.operational_report],
                contents=list(reporting.contents),
            ),
            **_copy(
                plan,
                "calendar",
                "channels",
                "response_guarantee",
                "features",
                "excluded",
                "catalog_bucket",
                "expiry_warning_days",
            ),
        }

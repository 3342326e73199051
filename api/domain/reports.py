"""The monthly consumption report as data, and its pure parts: the month, percentiles, per-period lines,
SLA and operational summaries, the CSV and the formatting for people. No I/O: the service reads the
database and hands the figures in.

Quantities are in ledger units (activities, or minutes for hours buckets), durations in seconds of
business time (open time of the target's support calendar), money in `Decimal`.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

from babel.dates import format_date
from babel.numbers import format_currency, format_decimal

from api.domain.availability import ServiceCredit
from api.domain.periods import add_months
from api.domain.sla import TargetClock
from api.domain.units import format_quantity

if TYPE_CHECKING:  # the on-call service's total; the domain does not import services
    from api.services.on_call import OnCallTotal

__all__ = [
    "CSV_COLUMNS",
    "HISTORY_MONTHS",
    "OPERATIONAL_CATEGORIES",
    "SLA_TARGETS",
    "ActivityCounts",
    "BucketLine",
    "ConsumptionReport",
    "MonthUsage",
    "OperationalLine",
    "OperationalReport",
    "PeriodLine",
    "ReportFormatter",
    "SlaLine",
    "TicketCount",
    "TicketFact",
    "history_months",
    "month_last_day",
    "operational_report",
    "parse_month",
    "percentile",
    "period_line",
    "report_csv",
    "report_weeks",
    "sla_lines",
]

HISTORY_MONTHS = 12
# Clocks summarised per target. The update interval is left out: its clock describes only the interval
# under way, and a ticket's missed updates are not a duration.
SLA_TARGETS = ("acknowledge", "first_response", "resolution")
# The operational report's counts (seed 004): every inquiry, and the ITIL processes by ticket category.
OPERATIONAL_CATEGORIES = {
    "incidents": "incident",
    "service_requests": "service_request",
    "problems": "problem",
    "changes": "change",
}
_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


# ---- the report as data (mapped 1:1 to GraphQL types) ------------------------------------------------------


@dataclass(frozen=True)
class PeriodLine:
    """One period of a bucket that overlaps the month (or was moved in it, e.g. booked ahead)."""

    period_start: date
    period_end: date  # inclusive; unused units expire at its end
    allowance: int
    consumed_in_month: int  # net ledger movements written in the month
    consumed_to_date: int  # in the period, up to the end of the month (up to now for the month under way)
    remaining: int  # allowance - consumed_to_date
    expiring: int  # what will expire at period_end if still unused (0 once the period has ended)
    expired: int  # what expired at period_end, when the period ended within the month
    ended: bool  # the period had ended by the end of the month (by now, for the month under way)
    overage_in_month: int  # work past the empty bucket, where the plan records it, written in the month
    overage_to_date: int


@dataclass(frozen=True)
class MonthUsage:
    """One month of the chart: net consumption (all periods) written in that calendar month."""

    month: date  # the first day
    consumed: int
    overage: int


@dataclass(frozen=True)
class BucketLine:
    bucket: str  # the bucket's code in the plan
    name: str
    unit: str  # "activities" or "hours": what people read
    ledger_unit: str  # "activities" or "minutes": what the quantities are in
    periods: tuple[PeriodLine, ...]  # by period start
    consumed_in_month: int
    overage_in_month: int
    expired_in_month: int
    history: tuple[MonthUsage, ...]  # HISTORY_MONTHS months up to and including the report's, oldest first


@dataclass(frozen=True)
class TicketCount:
    code: str  # ticket type or severity code ("" for tickets filed without a severity)
    name: str
    count: int


@dataclass(frozen=True)
class SlaLine:
    """One target of one severity over the tickets filed in the month, as their clocks stood at the
    report's as-of instant."""

    severity: str
    severity_name: str
    target: str  # "acknowledge", "first_response" or "resolution"
    target_seconds: int | None  # None: as time permits
    calendar: str | None
    clocks: int
    met: int  # met in time
    breached: int  # met late, or overdue
    running: int  # neither met nor breached yet (or paused)
    median_seconds: int | None  # business time to meet the target, over the clocks met (in time or late)
    p90_seconds: int | None


@dataclass(frozen=True)
class ActivityCounts:
    """Booked catalog activities: requested (booked) in the month, taking place in the month (scheduled
    to start in it, not cancelled by its end), delivered in the month, cancelled in the month."""

    requested: int
    scheduled: int
    delivered: int
    cancelled: int


@dataclass(frozen=True)
class OperationalLine:
    start: date
    end: date  # inclusive
    inquiries: int  # every ticket filed
    incidents: int
    service_requests: int
    problems: int
    changes: int
    responded: int  # tickets with a first (non-automatic) response
    first_response_median_seconds: int | None
    first_response_p90_seconds: int | None


@dataclass(frozen=True)
class OperationalReport:
    frequency: str  # "weekly" or "monthly"
    lines: tuple[OperationalLine, ...]


@dataclass(frozen=True)
class ConsumptionReport:
    contract_id: uuid.UUID
    contract_reference: str
    customer_id: uuid.UUID
    customer_name: str
    program_code: str
    program_name: str
    provider: str
    plan_code: str
    plan_name: str
    timezone: str  # the program's: the month's days are its days
    currency: str
    month: date  # the first day of the calendar month
    month_end: date  # its last day
    as_of: datetime  # the end of the month, or the moment the report was made if the month is under way
    complete: bool  # the month is over
    consumption_report: bool  # the plan promises the monthly consumption report
    buckets: tuple[BucketLine, ...]
    tickets_filed: int
    tickets_by_type: tuple[TicketCount, ...]
    tickets_by_severity: tuple[TicketCount, ...]
    sla: tuple[SlaLine, ...]
    activities: ActivityCounts
    service_credit: ServiceCredit | None  # None: the plan has no availability commitment
    on_call: OnCallTotal | None  # None: the plan has no on-call add-on
    operational: tuple[OperationalReport, ...]  # only where the plan promises operational reports


@dataclass(frozen=True)
class TicketFact:
    """What the SLA and operational summaries need of one ticket filed in the month."""

    filed_on: date  # in the program's time zone
    ticket_type: str
    category: str
    severity: str
    clocks: tuple[TargetClock, ...]


# ---- the month ---------------------------------------------------------------------------------------------


def parse_month(text: str) -> date:
    """'YYYY-MM' → the first day of that month; ValueError otherwise."""
    match = _MONTH.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"month {text[:20]!r} is not a calendar month written YYYY-MM, such as 2026-03")
    return date(int(match[1]), int(match[2]), 1)


def month_last_day(month: date) -> date:
    return add_months(month.replace(day=1), 1) - timedelta(days=1)


def history_months(month: date, count: int = HISTORY_MONTHS) -> list[date]:
    """The `count` months up to and including `month`, oldest first."""
    first = month.replace(day=1)
    return [add_months(first, offset) for offset in range(1 - count, 1)]


def report_weeks(month: date) -> list[tuple[date, date]]:
    """The ISO weeks (Monday to Sunday) that overlap the month, clipped to it, so that the weekly lines
    add up to the month."""
    first, last = month.replace(day=1), month_last_day(month)
    weeks = []
    start = first
    while start <= last:
        end = min(start + timedelta(days=6 - start.weekday()), last)
        weeks.append((start, end))
        start = end + timedelta(days=1)
    return weeks


# ---- figures -----------------------------------------------------------------------------------------------


def percentile(values: Iterable[int], share: Decimal | str) -> int | None:
    """The `share` percentile by linear interpolation between closest ranks (numpy's default; the 0.5
    percentile is the usual median), rounded half-up to a whole second; None for no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    position = (len(ordered) - 1) * Decimal(share)
    lower = int(position)  # floor: position >= 0
    upper = min(lower + 1, len(ordered) - 1)
    value = ordered[lower] + (position - lower) * (ordered[upper] - ordered[lower])
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def period_line(
    *,
    period_start: date,
    period_end: date,
    allowance: int,
    consumed_in_month: int,
    consumed_to_date: int,
    overage_in_month: int,
    overage_to_date: int,
    month: date,
    as_of_day: date,
) -> PeriodLine:
    """A period's line; `as_of_day` is the first day not yet over (the day after the month, or today)."""
    remaining = allowance - consumed_to_date
    ended = period_end < as_of_day
    ended_in_month = ended and month <= period_end <= month_last_day(month)
    return PeriodLine(
        period_start=period_start,
        period_end=period_end,
        allowance=allowance,
        consumed_in_month=consumed_in_month,
        consumed_to_date=consumed_to_date,
        remaining=remaining,
        expiring=0 if ended else remaining,
        expired=remaining if ended_in_month else 0,
        ended=ended,
        overage_in_month=overage_in_month,
        overage_to_date=overage_to_date,
    )


def sla_lines(facts: Sequence[TicketFact], severity_names: dict[str, str], severity_ranks: dict[str, int]) -> tuple[SlaLine, ...]:
    """Per severity (most severe first) and target: how many clocks were met, breached or still running,
    and the median and 90th percentile of the business time taken to meet them."""
    groups: dict[tuple[str, str], list[TargetClock]] = {}
    for fact in facts:
        for clock in fact.clocks:
            if clock.target in SLA_TARGETS:
                groups.setdefault((fact.severity, clock.target), []).append(clock)
    lines = []
    for (severity, target), clocks in groups.items():
        taken = [c.elapsed_seconds for c in clocks if c.met_at is not None]
        sample = clocks[-1]
        lines.append(
            SlaLine(
                severity=severity,
                severity_name=severity_names.get(severity, severity),
                target=target,
                target_seconds=sample.target_seconds,
                calendar=sample.calendar,
                clocks=len(clocks),
                met=sum(1 for c in clocks if c.met_at is not None and not c.breached),
                breached=sum(1 for c in clocks if c.breached),
                running=sum(1 for c in clocks if c.met_at is None and not c.breached),
                median_seconds=percentile(taken, "0.5"),
                p90_seconds=percentile(taken, "0.9"),
            )
        )
    lines.sort(key=lambda line: (severity_ranks.get(line.severity, 99), line.severity, SLA_TARGETS.index(line.target)))
    return tuple(lines)


def _first_response_seconds(fact: TicketFact) -> int | None:
    for clock in fact.clocks:
        if clock.target == "first_response" and clock.met_at is not None:
            return clock.elapsed_seconds
    return None


def operational_report(frequency: str, month: date, facts: Sequence[TicketFact]) -> OperationalReport:
    """Counts by ticket category and first-response times, per ISO week of the month (clipped to it) or
    for the whole month."""
    spans = report_weeks(month) if frequency == "weekly" else [(month.replace(day=1), month_last_day(month))]
    lines = []
    for start, end in spans:
        inside = [f for f in facts if start <= f.filed_on <= end]
        times = [s for s in map(_first_response_seconds, inside) if s is not None]
        counts = {
            field: sum(1 for f in inside if f.category == category)
            for field, category in OPERATIONAL_CATEGORIES.items()
        }
        lines.append(
            OperationalLine(
                start=start, end=end, inquiries=len(inside), responded=len(times),
                first_response_median_seconds=percentile(times, "0.5"),
                first_response_p90_seconds=percentile(times, "0.9"),
                **counts,
            )
        )
    return OperationalReport(frequency, tuple(lines))


# ---- for people --------------------------------------------------------------------------------------------


class ReportFormatter:
    """Numbers, money, dates and quantities as people read them, with babel, in one locale."""

    def __init__(self, locale: str = "en"):
        self.locale = locale

    def number(self, value: int | Decimal) -> str:
        return format_decimal(value, locale=self.locale)

    def quantity(self, value: int, ledger_unit: str) -> str:
        """Activities as a count ('1 activity', '12 activities'), minutes as '12 h 30 min'."""
        return format_quantity(value, ledger_unit, self.number)

    def duration(self, seconds: int | None) -> str:
        """Business time: '1 h 20 min', '45 min', '30 s'; an em dash for none."""
        if seconds is None:
            return "—"
        if seconds < 60:
            return f"{seconds} s"
        minutes = (seconds + 30) // 60  # to the nearest minute, half up
        return self.quantity(minutes, "minutes")

    def money(self, amount: Decimal, currency: str) -> str:
        return format_currency(amount, currency, locale=self.locale)

    def day(self, value: date) -> str:
        return format_date(value, format="medium", locale=self.locale)

    def month(self, value: date) -> str:
        return format_date(value, format="MMMM y", locale=self.locale)

    def short_month(self, value: date) -> str:
        return format_date(value, format="MMM y", locale=self.locale)

    def percent(self, value: Decimal) -> str:
        return f"{format_decimal(value, format='#,##0.00##', locale=self.locale)} %"


# ---- CSV ---------------------------------------------------------------------------------------------------

CSV_COLUMNS = ("section", "item", "period_start", "period_end", "measure", "value", "unit", "display")


def _csv_rows(report: ConsumptionReport, f: ReportFormatter) -> Iterable[tuple[Any, ...]]:
    month = report.month.isoformat()[:7]
    yield ("contract", report.contract_reference, report.month, report.month_end, "month", month, "", f.month(report.month))
    yield ("contract", report.contract_reference, report.month, report.month_end, "customer", report.customer_name, "", "")
    yield ("contract", report.contract_reference, report.month, report.month_end, "plan", report.plan_name, "", "")
    yield ("contract", report.contract_reference, report.month, report.month_end, "as_of", report.as_of.isoformat(), "", "")
    for bucket in report.buckets:
        unit = bucket.ledger_unit
        for name in ("consumed_in_month", "overage_in_month", "expired_in_month"):
            value = getattr(bucket, name)
            yield ("bucket", bucket.bucket, report.month, report.month_end, name, value, unit, f.quantity(value, unit))
        for p in bucket.periods:
            for name in (
                "allowance", "consumed_in_month", "consumed_to_date", "remaining", "expiring", "expired",
                "overage_in_month", "overage_to_date",
            ):
                value = getattr(p, name)
                yield ("period", bucket.bucket, p.period_start, p.period_end, name, value, unit, f.quantity(value, unit))
        for m in bucket.history:
            end = month_last_day(m.month)
            yield ("history", bucket.bucket, m.month, end, "consumed", m.consumed, unit, f.quantity(m.consumed, unit))
            yield ("history", bucket.bucket, m.month, end, "overage", m.overage, unit, f.quantity(m.overage, unit))
    yield ("tickets", "all", report.month, report.month_end, "filed", report.tickets_filed, "tickets", "")
    for count in report.tickets_by_type:
        yield ("tickets_by_type", count.code, report.month, report.month_end, "filed", count.count, "tickets", count.name)
    for count in report.tickets_by_severity:
        yield ("tickets_by_severity", count.code, report.month, report.month_end, "filed", count.count, "tickets", count.name)
    for line in report.sla:
        item = f"{line.severity}/{line.target}"
        for name in ("clocks", "met", "breached", "running"):
            yield ("sla", item, report.month, report.month_end, name, getattr(line, name), "clocks", "")
        yield ("sla", item, report.month, report.month_end, "target", line.target_seconds, "seconds", f.duration(line.target_seconds))
        yield ("sla", item, report.month, report.month_end, "median", line.median_seconds, "seconds", f.duration(line.median_seconds))
        yield ("sla", item, report.month, report.month_end, "p90", line.p90_seconds, "seconds", f.duration(line.p90_seconds))
    for name in ("requested", "scheduled", "delivered", "cancelled"):
        yield ("activities", "bookings", report.month, report.month_end, name, getattr(report.activities, name), "activities", "")
    credit = report.service_credit
    if credit is not None:
        yield ("service_credit", "availability", report.month, report.month_end, "availability_percent", credit.availability_percent, "percent", f.percent(credit.availability_percent))
        yield ("service_credit", "availability", report.month, report.month_end, "downtime_minutes", credit.downtime_minutes, "minutes", f.quantity(credit.downtime_minutes, "minutes"))
        yield ("service_credit", "availability", report.month, report.month_end, "credit_percent", credit.credit_percent, "percent", f.percent(credit.credit_percent))
        yield ("service_credit", "availability", report.month, report.month_end, "amount", credit.amount, credit.currency, f.money(credit.amount, credit.currency))
    on_call = report.on_call
    if on_call is not None:
        yield ("on_call", "consultant_days", report.month, report.month_end, "consultant_days", on_call.consultant_days, "days", "")
        yield ("on_call", "consultant_days", report.month, report.month_end, "amount", on_call.amount, on_call.currency, f.money(on_call.amount, on_call.currency))
    for operational in report.operational:
        for line in operational.lines:
            for name in ("inquiries", "incidents", "service_requests", "problems", "changes", "responded"):
                yield ("operational", operational.frequency, line.start, line.end, name, getattr(line, name), "tickets", "")
            for name, value in (("first_response_median", line.first_response_median_seconds), ("first_response_p90", line.first_response_p90_seconds)):
                yield ("operational", operational.frequency, line.start, line.end, name, value, "seconds", f.duration(value))


def report_csv(report: ConsumptionReport, formatter: ReportFormatter | None = None) -> str:
    """The report as CSV text, one figure a row: quantities in ledger units, durations in seconds, money in
    the currency, with a `display` column for people."""
    f = formatter or ReportFormatter()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in _csv_rows(report, f):
        writer.writerow(["" if value is None else value.isoformat() if isinstance(value, date) else value for value in row])
    return out.getvalue()

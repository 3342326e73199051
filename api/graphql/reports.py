"""GraphQL of reports: a contract's monthly consumption report, with its operational report where promised."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import strawberry
from strawberry.types import Info

from api.domain import reports as report_data
from api.graphql.availability import ServiceCreditType
from api.graphql.context import RequestContext
from api.graphql.ids import parse_id
from api.graphql.programs import EntitlementUnit, LedgerUnit
from api.graphql.rows import from_row
from api.services import reports
from api.services.errors import NotFound

__all__ = [
    "ActivityCountsType",
    "BucketReportType",
    "ConsumptionReportType",
    "MonthUsageType",
    "OnCallChargeType",
    "OperationalLineType",
    "OperationalReportType",
    "PeriodReportType",
    "ReportQuery",
    "SlaResultType",
    "TicketCountType",
]


@strawberry.type(name="PeriodReport", description="One period of a bucket overlapping the month, in ledger units.")
class PeriodReportType:
    period_start: date
    period_end: date = strawberry.field(description="The last day (inclusive); unused units expire at its end.")
    allowance: int
    consumed_in_month: int
    consumed_to_date: int = strawberry.field(description="In the period up to the month's end (or now).")
    remaining: int
    expiring: int = strawberry.field(description="What expires at the period's end if still unused.")
    expired: int = strawberry.field(description="What expired, when the period ended within the month.")
    ended: bool
    overage_in_month: int
    overage_to_date: int


@strawberry.type(name="MonthUsage", description="Net consumption written in one calendar month.")
class MonthUsageType:
    month: date
    consumed: int
    overage: int


@strawberry.type(name="BucketReport", description="A bucket's month: its periods, and its last 12 months.")
class BucketReportType:
    bucket: str
    name: str
    unit: EntitlementUnit
    ledger_unit: LedgerUnit
    periods: list[PeriodReportType]
    consumed_in_month: int
    overage_in_month: int
    expired_in_month: int
    history: list[MonthUsageType] = strawberry.field(description="12 months up to the report's, oldest first.")

    @classmethod
    def build(cls, line: report_data.BucketLine) -> BucketReportType:
        return from_row(
            cls,
            line,
            unit=EntitlementUnit(line.unit),
            ledger_unit=LedgerUnit(line.ledger_unit),
            periods=[from_row(PeriodReportType, p) for p in line.periods],
            history=[from_row(MonthUsageType, m) for m in line.history],
        )


@strawberry.type(name="TicketCount")
class TicketCountType:
    code: str = strawberry.field(description="The ticket type or severity code; empty for no severity.")
    name: str
    count: int


@strawberry.type(
    name="SlaResult",
    description="One target of one severity over the tickets filed in the month: met, breached, and the business "
    "time taken (seconds of the target calendar's open time) at the median and the 90th percentile.",
)
class SlaResultType:
    severity: str
    severity_name: str
    target: str = strawberry.field(description="acknowledge, first_response or resolution")
    target_seconds: int | None
    calendar: str | None
    clocks: int
    met: int
    breached: int
    running: int
    median_seconds: int | None
    p90_seconds: int | None


@strawberry.type(name="ActivityCounts", description="Catalog activities requested, scheduled, delivered, cancelled.")
class ActivityCountsType:
    requested: int
    scheduled: int
    delivered: int
    cancelled: int


@strawberry.type(name="OnCallCharge", description="On-call consultant-days reserved in the month and their price.")
class OnCallChargeType:
    consultant_days: int
    amount: Decimal
    currency: str


@strawberry.type(name="OperationalLine", description="One week or month of the operational report.")
class OperationalLineType:
    start: date
    end: date
    inquiries: int
    incidents: int
    service_requests: int
    problems: int
    changes: int
    responded: int
    first_response_median_seconds: int | None
    first_response_p90_seconds: int | None


@strawberry.type(name="OperationalReport")
class OperationalReportType:
    frequency: str = strawberry.field(description="weekly or monthly, as the plan promises")
    lines: list[OperationalLineType]


@strawberry.type(
    name="ConsumptionReport",
    description="A contract's calendar month: consumption per bucket and period, tickets, SLA results, "
    "activities, service credit, on-call charges and, where the plan promises it, the operational report. "
    "Quantities are in ledger units.",
)
class ConsumptionReportType:
    contract_id: strawberry.ID
    contract_reference: str
    customer_id: strawberry.ID
    customer_name: str
    program_code: str
    program_name: str
    provider: str
    plan_code: str
    plan_name: str
    timezone: str
    currency: str
    month: date
    month_end: date
    as_of: datetime = strawberry.field(description="The month's end, or now for the month under way.")
    complete: bool
    consumption_report: bool = strawberry.field(description="Whether the plan promises the monthly report.")
    buckets: list[BucketReportType]
    tickets_filed: int
    tickets_by_type: list[TicketCountType]
    tickets_by_severity: list[TicketCountType]
    sla: list[SlaResultType]
    activities: ActivityCountsType
    service_credit: ServiceCreditType | None
    on_call: OnCallChargeType | None
    operational: list[OperationalReportType]
    csv_path: str = strawberry.field(description="Where the same report downloads as CSV, with the same credentials.")

    @classmethod
    def build(cls, report: report_data.ConsumptionReport) -> ConsumptionReportType:
        return from_row(
            cls,
            report,
            buckets=[BucketReportType.build(b) for b in report.buckets],
            tickets_by_type=[from_row(TicketCountType, t) for t in report.tickets_by_type],
            tickets_by_severity=[from_row(TicketCountType, t) for t in report.tickets_by_severity],
            sla=[from_row(SlaResultType, s) for s in report.sla],
            activities=from_row(ActivityCountsType, report.activities),
            service_credit=None if report.service_credit is None else ServiceCreditType.build(report.service_credit),
            on_call=None if report.on_call is None else from_row(OnCallChargeType, report.on_call),
            operational=[
                OperationalReportType(
                    frequency=o.frequency, lines=[from_row(OperationalLineType, line) for line in o.lines]
                )
                for o in report.operational
            ],
            csv_path=reports.csv_path(report.contract_id, report.month),
        )


@strawberry.type
class ReportQuery:
    @strawberry.field(
        description="A contract's consumption report for a calendar month (YYYY-MM, up to the current one, within "
        "the term); null for a contract the caller may not read."
    )
    async def consumption_report(
        self, info: Info[RequestContext, None], contract_id: strawberry.ID, month: str
    ) -> ConsumptionReportType | None:
        ctx, ident = info.context, parse_id(contract_id)
        if ident is None:
            return None
        try:
            report = await reports.consumption_report(ctx.app, ctx.actor, ident, month)
        except NotFound:
            return None
        return ConsumptionReportType.build(report)

"""The monthly consumption report of a contract: one builder for GraphQL, the CSV, the e-mail and the CLI.

`build_reports` makes the reports of many contracts for one month in a constant number of statements
(contracts and plans are read by the caller): per group of contracts whose program time zones give the
same month boundaries, one ledger aggregate, one read of the tickets filed, one of their events and one
bookings aggregate; then the service credits and on-call totals of the batch. Everything is as of the end
of the month (or now, for the month under way), so a past month's report reads the same whenever it is
made, except where a later cancellation gives units back to a period that has already ended.

The month is the calendar month in the program's time zone; availability is measured on UTC minutes (the
availability service decides that).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from api.domain import reports as domain
from api.domain.availability import ServiceCredit
from api.domain.on_call import on_call_add_ons
from api.domain.periods import add_months, periods_of_term
from api.domain.reports import (
    ActivityCounts,
    BucketLine,
    ConsumptionReport,
    MonthUsage,
    PeriodLine,
    ReportFormatter,
    TicketCount,
    TicketFact,
    history_months,
    month_last_day,
    parse_month,
    period_line,
)
from api.models import (
    Booking,
    Contract,
    Customer,
    LedgerEntry,
    LedgerKind,
    PlanRecord,
    ProgramRecord,
    Ticket,
    TicketEventRecord,
)
from api.services import inputs, policy
from api.services.availability import service_credits
from api.services.context import Actor, AppContext
from api.services.contracts import ContractView
from api.services.errors import NotFound, ValidationFailed
from api.services.on_call import OnCallTotal, on_call_totals
from api.services.programs import plan_view
from api.services.tickets import TicketView, ticket_clocks

__all__ = [
    "csv_path",
    "EARLIEST_MONTH",
    "RenderedReport",
    "ReportSubject",
    "build_reports",
    "check_report_month",
    "consumption_report",
    "load_subjects",
    "render_report_email",
    "render_report_text",
    "report_csv",
    "sends_monthly_report",
]

EARLIEST_MONTH = date(2000, 1, 1)
TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "email"
_OVERAGE = LedgerKind.OVERAGE.value


@dataclass(frozen=True)
class ReportSubject:
    """A contract with its plan and customer: what a report is made for."""

    view: ContractView
    customer: Customer

    @property
    def contract(self) -> Contract:
        return self.view.contract


def sends_monthly_report(view: ContractView) -> bool:
    """Whether the plan promises a monthly report by e-mail: the consumption report, or an operational
    report (its weekly lines travel in the monthly e-mail too)."""
    reporting = view.plan.rules.reporting
    return reporting.consumption_report == "monthly" or bool(reporting.operational_report)


# ---- reading -----------------------------------------------------------------------------------------------


async def load_subjects(session: AsyncSession, actor: Actor, ids: Sequence[uuid.UUID]) -> list[ReportSubject]:
    """The contracts among `ids` the actor may read, with plans and customers, in two statements (each
    program's document read once), in the order of `ids`."""
    rows = (
        await session.execute(
            policy.visible_contracts(actor)
            .add_columns(PlanRecord, Customer)
            .join(PlanRecord, PlanRecord.id == Contract.plan_id)
            .join(Customer, Customer.id == Contract.customer_id)
            .where(Contract.id.in_(set(ids)))
        )
    ).all()
    if not rows:
        return []
    records = {
        record.id: record
        for record in await session.scalars(
            select(ProgramRecord).where(ProgramRecord.id.in_({plan.program_id for _, plan, _ in rows}))
        )
    }
    found = {
        contract.id: ReportSubject(ContractView(contract, plan_view(plan, records[plan.program_id])), customer)
        for contract, plan, customer in rows
    }
    return [found[ident] for ident in ids if ident in found]


def _month(ctx: AppContext, value: str | date) -> date:
    """The month asked for; how far back and forward a report may be is `check_report_month`'s."""
    if isinstance(value, date):
        return value.replace(day=1)
    try:
        return parse_month(inputs.text(ctx, value, "month"))
    except ValueError as exc:
        raise ValidationFailed(str(exc), field="month") from None


def check_report_month(ctx: AppContext, view: ContractView, month: date) -> None:
    """A report is for a month from EARLIEST_MONTH up to the program's current month, within the term."""
    current = view.today(ctx).replace(day=1)
    if month < EARLIEST_MONTH:
        raise ValidationFailed(f"month {month:%Y-%m} is before {EARLIEST_MONTH:%Y-%m}", field="month")
    if month > current:
        raise ValidationFailed(
            f"month {month:%Y-%m} has not begun: the latest report is for {current:%Y-%m}", field="month"
        )
    contract = view.contract
    if month_last_day(month) < contract.effective_date or month > contract.end_date:
        raise ValidationFailed(
            f"month {month:%Y-%m} is outside the term of contract {contract.reference} "
            f"({contract.effective_date} to {contract.end_date})",
            field="month",
        )


async def consumption_report(ctx: AppContext, actor: Actor, contract_id: uuid.UUID, month: str | date) -> ConsumptionReport:
    """The consumption report of a contract the actor may read, for a calendar month ('YYYY-MM')."""
    policy.require(actor, "contract.read")
    first = _month(ctx, month)
    async with ctx.db.read() as session:
        subjects = await load_subjects(session, actor, [contract_id])
        if not subjects:
            raise NotFound("contract", contract_id, field="contractId")
        check_report_month(ctx, subjects[0].view, first)
        return (await build_reports(session, ctx, subjects, first))[contract_id]


# ---- building ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Window:
    """The instants that cut one month in one time zone."""

    timezone: str
    month: date
    months: tuple[date, ...]  # the chart's months, oldest first
    starts: tuple[datetime, ...]  # the start of each chart month, then the start of the next month
    as_of: datetime
    as_of_day: date  # the first day not over by as_of
    until: datetime  # exclusive bound of what counts: the next month's start, or just after now


    @property
    def month_start(self) -> datetime:
        return self.starts[-2]

    @property
    def next_start(self) -> datetime:
        return self.starts[-1]

    @property
    def complete(self) -> bool:
        return self.as_of >= self.next_start


def _window(ctx: AppContext, timezone: str, month: date) -> _Window:
    zone = ZoneInfo(timezone)
    months = tuple(history_months(month))
    starts = tuple(datetime.combine(m, time(0), zone) for m in (*months, add_months(month, 1)))
    now = ctx.now()
    complete = now >= starts[-1]
    return _Window(
        timezone, month, months, starts, starts[-1] if complete else now,
        add_months(month, 1) if complete else ctx.today(timezone),
        starts[-1] if complete else now + timedelta(microseconds=1),  # what happened at `now` counts
    )


async def build_reports(
    session: AsyncSession, ctx: AppContext, subjects: Sequence[ReportSubject], month: date
) -> dict[uuid.UUID, ConsumptionReport]:
    """The reports of many contracts for one month, in a few statements whatever their number."""
    month = month.replace(day=1)
    groups: dict[tuple[datetime, ...], tuple[_Window, list[ReportSubject]]] = {}
    for subject in subjects:
        window = _window(ctx, subject.view.plan.program.timezone, month)
        groups.setdefault((*window.starts, window.as_of), (window, []))[1].append(subject)

    credits, on_call = await _charges(session, [s.contract for s in subjects], month)
    reports: dict[uuid.UUID, ConsumptionReport] = {}
    for window, members in groups.values():
        ids = [s.contract.id for s in members]
        ledger = await _ledger_sums(session, ids, window)
        tickets = await _tickets(session, ctx, members, window)
        activities = await _activities(session, ids, window)
        for subject in members:
            ident = subject.contract.id
            reports[ident] = _report(
                subject, window, ledger.get(ident, {}), tickets.get(ident, []),
                activities.get(ident, ActivityCounts(0, 0, 0, 0)), credits.get(ident), on_call.get(ident),
            )
    return reports


# (bucket, period_start, period_end, overage?, month index: -1 before the chart, 0-11 the chart, 12 after)
_LedgerKey = tuple[str, date, date, bool, int]


async def _ledger_sums(
    session: AsyncSession, ids: list[uuid.UUID], window: _Window
) -> dict[uuid.UUID, dict[_LedgerKey, int]]:
    """Net ledger movements up to as_of, per contract, bucket, period, consumption or overage and month of
    the chart, in one statement. Entries written before the chart count only for periods still running in
    the month (what those periods consumed so far)."""
    entry, reversed_entry = LedgerEntry, aliased(LedgerEntry)
    overage = case((entry.kind == _OVERAGE, 1), (reversed_entry.kind == _OVERAGE, 1), else_=0)
    index = case(
        *((entry.created_at < start, n - 1) for n, start in enumerate(window.starts)),
        else_=len(window.starts) - 1,
    )
    rows = await session.execute(
        select(
            entry.contract_id, entry.bucket_code, entry.period_start, entry.period_end, overage, index,
            func.sum(entry.quantity),
        )
        .outerjoin(reversed_entry, reversed_entry.id == entry.reverses_entry_id)
        .where(
            entry.contract_id.in_(ids),
            entry.created_at < window.until,
            or_(entry.created_at >= window.starts[0], entry.period_end >= window.month),
        )
        .group_by(entry.contract_id, entry.bucket_code, entry.period_start, entry.period_end, overage, index)
    )
    found: dict[uuid.UUID, dict[_LedgerKey, int]] = {}
    for contract_id, bucket, start, end, over, month_index, total in rows:
        key = (bucket, start, end, bool(over), int(month_index))
        sums = found.setdefault(contract_id, {})
        sums[key] = sums.get(key, 0) + int(total)
    return found


async def _tickets(
    session: AsyncSession, ctx: AppContext, members: list[ReportSubject], window: _Window
) -> dict[uuid.UUID, list[TicketFact]]:
    """The tickets filed in the month with their SLA clocks as of as_of: two statements."""
    filed = (
        Ticket.contract_id.in_([s.contract.id for s in members]),
        Ticket.created_at >= window.month_start,
        Ticket.created_at < window.until,
    )
    tickets = list(await session.scalars(select(Ticket).where(*filed).order_by(Ticket.created_at, Ticket.id)))
    if not tickets:
        return {}
    events: dict[uuid.UUID, list[TicketEventRecord]] = {t.id: [] for t in tickets}
    for event in await session.scalars(
        select(TicketEventRecord)
        .where(TicketEventRecord.ticket_id.in_(select(Ticket.id).where(*filed)))
        .order_by(TicketEventRecord.ticket_id, TicketEventRecord.at, TicketEventRecord.position)
    ):
        events[event.ticket_id].append(event)
    views = {s.contract.id: s.view for s in members}
    zone = ZoneInfo(window.timezone)
    share = ctx.settings.sla_at_risk_share
    found: dict[uuid.UUID, list[TicketFact]] = {}
    for ticket in tickets:
        plan = views[ticket.contract_id].plan
        offered = plan.rules.ticket_types.get(ticket.ticket_type)
        clocks = ticket_clocks(TicketView(ticket, events[ticket.id], plan), window.as_of, share)
        found.setdefault(ticket.contract_id, []).append(
            TicketFact(
                filed_on=ticket.created_at.astimezone(zone).date(),
                ticket_type=ticket.ticket_type,
                category=offered.category if offered is not None else "other",
                severity=ticket.severity or "",
                clocks=tuple(clocks),
            )
        )
    return found


async def _activities(session: AsyncSession, ids: list[uuid.UUID], window: _Window) -> dict[uuid.UUID, ActivityCounts]:
    """Bookings requested, taking place, delivered and cancelled in the month, in one statement."""

    def within(column):  # type: ignore[no-untyped-def]
        return and_(column >= window.month_start, column < window.until)

    def count(condition):  # type: ignore[no-untyped-def]
        return func.sum(case((condition, 1), else_=0))

    rows = await session.execute(
        select(
            Booking.contract_id,
            count(within(Booking.created_at)),
            count(
                and_(
                    Booking.starts_at >= window.month_start,
                    Booking.starts_at < window.next_start,
                    Booking.created_at < window.until,
                    or_(Booking.cancelled_at.is_(None), Booking.cancelled_at >= window.until),
                )
            ),
            count(within(Booking.delivered_at)),
            count(within(Booking.cancelled_at)),
        )
        .where(Booking.contract_id.in_(ids), Booking.created_at < window.until)
        .group_by(Booking.contract_id)
    )
    return {row[0]: ActivityCounts(*(int(n or 0) for n in row[1:])) for row in rows}


async def _charges(
    session: AsyncSession, contracts: list[Contract], month: date
) -> tuple[dict[uuid.UUID, ServiceCredit | None], dict[uuid.UUID, OnCallTotal]]:
    """Service credits and on-call totals of the month, from their own services (a few statements each)."""
    if not contracts:
        return {}, {}
    return await service_credits(session, contracts, month), await on_call_totals(session, contracts, month)


def _report(
    subject: ReportSubject,
    window: _Window,
    sums: dict[_LedgerKey, int],
    facts: list[TicketFact],
    activities: ActivityCounts,
    credit: ServiceCredit | None,
    on_call: OnCallTotal | None,
) -> ConsumptionReport:
    view, contract = subject.view, subject.contract
    rules, program = view.plan.rules, view.plan.program
    month, last = window.month, month_last_day(window.month)
    chart_index = len(window.months) - 1

    buckets = []
    for code, bucket in rules.buckets.items():
        periods: dict[date, date] = {
            p.start: p.end
            for p in periods_of_term(
                effective_date=contract.effective_date, end_date=contract.end_date,
                length=bucket.period, anchor=bucket.anchor,
            )
            if p.start <= last and p.end >= month
        }
        history = {n: [0, 0] for n in range(len(window.months))}
        totals: dict[date, list[int]] = {}  # period start → [in month, to date, overage in month, overage to date]
        for (bucket_code, start, end, over, index), total in sums.items():
            if bucket_code != code:
                continue
            if 0 <= index <= chart_index:
                history[index][1 if over else 0] += total
            if index == chart_index and total:
                periods.setdefault(start, end)
            figures = totals.setdefault(start, [0, 0, 0, 0])
            figures[3 if over else 1] += total
            if index == chart_index:
                figures[2 if over else 0] += total
        lines: list[PeriodLine] = []
        for start in sorted(periods):
            in_month, to_date, over_month, over_to_date = totals.get(start, [0, 0, 0, 0])
            lines.append(
                period_line(
                    period_start=start, period_end=periods[start], allowance=view.allowance(code),
                    consumed_in_month=in_month, consumed_to_date=to_date, overage_in_month=over_month,
                    overage_to_date=over_to_date, month=month, as_of_day=window.as_of_day,
                )
            )
        buckets.append(
            BucketLine(
                bucket=code,
                name=bucket.name,
                unit=bucket.unit,
                ledger_unit=bucket.ledger_unit,
                periods=tuple(lines),
                consumed_in_month=history[chart_index][0],
                overage_in_month=history[chart_index][1],
                expired_in_month=sum(line.expired for line in lines),
                history=tuple(MonthUsage(m, *history[n]) for n, m in enumerate(window.months)),
            )
        )

    by_type: dict[str, int] = {}
    by_severity: dict[str, int] = {}
    for fact in facts:
        by_type[fact.ticket_type] = by_type.get(fact.ticket_type, 0) + 1
        by_severity[fact.severity] = by_severity.get(fact.severity, 0) + 1
    type_order = list(rules.ticket_types)
    severity_names = {code: s.name for code, s in rules.severities.items()}
    severity_ranks = {code: s.rank for code, s in rules.severities.items()}
    tickets_by_type = tuple(
        TicketCount(code, rules.ticket_types[code].name if code in rules.ticket_types else code, count)
        for code, count in sorted(by_type.items(), key=lambda kv: (_position(type_order, kv[0]), kv[0]))
    )
    tickets_by_severity = tuple(
        TicketCount(code, severity_names.get(code, code) if code else "No severity", count)
        for code, count in sorted(by_severity.items(), key=lambda kv: (severity_ranks.get(kv[0], 99), kv[0]))
    )
    operational = tuple(
        domain.operational_report(frequency, month, facts) for frequency in rules.reporting.operational_report
    )
    return ConsumptionReport(
        contract_id=contract.id,
        contract_reference=contract.reference,
        customer_id=subject.customer.id,
        customer_name=subject.customer.name,
        program_code=program.code,
        program_name=program.name,
        provider=program.provider,
        plan_code=view.plan.record.code,
        plan_name=rules.name,
        timezone=program.timezone,
        currency=contract.currency,
        month=month,
        month_end=last,
        as_of=window.as_of,
        complete=window.complete,
        consumption_report=rules.reporting.consumption_report == "monthly",
        buckets=tuple(buckets),
        tickets_filed=len(facts),
        tickets_by_type=tickets_by_type,
        tickets_by_severity=tickets_by_severity,
        sla=domain.sla_lines(facts, severity_names, severity_ranks),
        activities=activities,
        service_credit=credit if rules.availability is not None else None,
        on_call=on_call if on_call_add_ons(rules) else None,
        operational=operational,
    )


def _position(order: list[str], code: str) -> int:
    return order.index(code) if code in order else len(order)


# ---- for people --------------------------------------------------------------------------------------------


def report_csv(report: ConsumptionReport, locale: str = "en") -> str:
    """The CSV text of a report (for the HTTP download and `entitle report --format csv`)."""
    return domain.report_csv(report, ReportFormatter(locale))


@dataclass(frozen=True)
class RenderedReport:
    subject: str
    text: str
    html: str


_environment: Environment | None = None
_TEXT_BAR = 30  # characters of the longest bar in the text part


def _templates() -> Environment:
    global _environment
    if _environment is None:
        _environment = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=select_autoescape(["html", "html.j2"], default_for_string=False),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
    return _environment


def _chart(report: ConsumptionReport) -> list[dict]:
    """Per bucket, the 12 months with a bar length as a share of the largest month (or of the allowance)."""
    charts = []
    for bucket in report.buckets:
        allowance = max((p.allowance for p in bucket.periods), default=0)
        top = max([m.consumed + m.overage for m in bucket.history] + [1])
        months = []
        for m in bucket.history:
            share = Decimal(max(m.consumed, 0) + m.overage) / top
            months.append({
                "usage": m,
                "percent": int((share * 100).to_integral_value(ROUND_HALF_UP)),
                "cells": int((share * _TEXT_BAR).to_integral_value(ROUND_HALF_UP)),
            })
        charts.append({"bucket": bucket, "allowance": allowance, "months": months})
    return charts


def _context(report: ConsumptionReport, *, locale: str, recipient_name: str | None, public_url: str) -> dict:
    return {
        "r": report,
        "f": ReportFormatter(locale),
        "charts": _chart(report),
        "recipient_name": recipient_name,
        "link": f"{public_url}/contracts/{report.contract_id}",
        "bar_width": _TEXT_BAR,
    }


def render_report_text(report: ConsumptionReport, *, locale: str = "en", public_url: str = "") -> str:
    """The report for people, as plain text (the CLI, and the body of the e-mail's text part)."""
    return _templates().get_template("monthly_report_body.txt.j2").render(
        _context(report, locale=locale, recipient_name=None, public_url=public_url)
    )


def render_report_email(
    report: ConsumptionReport, *, recipient_name: str | None, public_url: str, locale: str = "en", on_behalf: bool = False
) -> RenderedReport:
    """The monthly e-mail: subject, plain text and HTML from the same figures. `on_behalf`: the recipient is
    the partner that manages the customer."""
    f = ReportFormatter(locale)
    context = _context(report, locale=locale, recipient_name=recipient_name, public_url=public_url)
    context["on_behalf"] = on_behalf
    subject = f"[{report.provider}] {f.month(report.month)} report for {report.contract_reference} ({report.customer_name})"
    return RenderedReport(
        subject=subject,
        text=_templates().get_template("monthly_report.txt.j2").render(context),
        html=_templates().get_template("monthly_report.html.j2").render(context),
    )


def csv_path(contract_id: uuid.UUID, month: date) -> str:
    """Where a report downloads as CSV (the same credentials as the API: a bearer token or the session)."""
    return f"/reports/{contract_id}/{month:%Y-%m}.csv"

"""The monthly consumption report (`reports.consumption_report`): a report worked by hand from the demo
data, matched field by field in the dataclass, the CSV and the e-mail; per-bucket edge cases (a month
over two contract-anchored quarters with units expired, overage); SLA results and the operational report
of tickets filed in the month; month validation and access."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from api.config import PROJECT_ROOT, Settings
from api.db import Database
from api.domain.reports import ActivityCounts, MonthUsage, OperationalLine, PeriodLine, SlaLine, TicketCount
from api.migrate import upgrade
from api.models import LedgerKind
from api.services import contracts, ledger, reports, tickets
from api.services.context import Actor, AppContext, FixedClock
from api.services.demo import load_demo
from api.services.errors import NotFound, ValidationFailed
from api.services.tickets import NewTicket
from tests.conftest import ADMIN, NOW

ENGINEER = Actor(kind="staff", ref="user:engineer", name="Sam Support", roles=frozenset({"support_engineer"}))
MEDIUM = "DEMO-ADVISORY-ASSURE-MEDIUM"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def customer_actor(customer_id: uuid.UUID) -> Actor:
    return Actor(kind="customer", ref=f"user:{uuid.uuid4()}", name="Cora Customer", customer_id=customer_id)


@pytest.fixture
async def demo_ctx(database_factory) -> AsyncIterator[tuple[AppContext, FixedClock]]:  # type: ignore[no-untyped-def]
    """The demo data loaded at the tests' NOW (2026-03-10 12:00 UTC) into a database of its own."""
    url = database_factory.new()
    upgrade(url)
    db = Database(url)
    clock = FixedClock(NOW)
    ctx = AppContext(db=db, settings=Settings(database_url=url), clock=clock)
    try:
        await load_demo(ctx, PROJECT_ROOT / "programs")
        yield ctx, clock
    finally:
        await db.dispose()


async def contract_id(ctx: AppContext, reference: str) -> uuid.UUID:
    found = [c for c in (await contracts.page_contracts(ctx, ADMIN, reference=reference)).items if c.reference == reference]
    assert found, reference
    return found[0].id


# ---- worked by hand from the demo data ---------------------------------------------------------------------
#
# The demo, loaded on 2026-03-10, gives every contract a term from 2025-11-15 (four months back, on the
# 15th) to 2026-11-14. Assure Medium counts 10 small activities a quarter from the effective date:
# 2025-11-15 to 2026-02-14, then 2026-02-15 to 2026-05-14. On 2026-03-10 the demo consumed 2 activities
# ("demo-activities") and booked, for 2026-03-17, a code review (size 2, scheduled 10:00 UTC) and an
# advisory call (size 1, only requested): 2 + 2 + 1 = 5 used in March, all in the second quarter, which
# leaves 5 that expire on 2026-05-14 unless used. No tickets; Assure has no availability SLA and no on-call.
# February: nothing was used; the first quarter ended on 2026-02-14 with all 10 unused, so 10 expired.

MARCH_PERIOD = PeriodLine(
    period_start=date(2026, 2, 15), period_end=date(2026, 5, 14), allowance=10, consumed_in_month=5,
    consumed_to_date=5, remaining=5, expiring=5, expired=0, ended=False, overage_in_month=0, overage_to_date=0,
)


async def test_demo_report_worked_by_hand(demo_ctx):
    ctx, clock = demo_ctx
    clock.instant = utc(2026, 4, 2, 9)  # March is over
    ident = await contract_id(ctx, MEDIUM)
    report = await reports.consumption_report(ctx, ADMIN, ident, "2026-03")

    assert report.contract_id == ident
    assert report.contract_reference == MEDIUM
    assert report.customer_name == "Acme Retail"
    assert (report.program_code, report.plan_code, report.plan_name) == ("advisory-assure", "medium", "Assure Medium")
    assert report.provider == "Assure Advisory Services"
    assert (report.month, report.month_end) == (date(2026, 3, 1), date(2026, 3, 31))
    assert report.as_of == utc(2026, 4, 1) and report.complete
    assert report.currency == "EUR" and report.timezone == "UTC"
    assert report.consumption_report is True

    (bucket,) = report.buckets
    assert (bucket.bucket, bucket.name, bucket.unit, bucket.ledger_unit) == (
        "activities", "Small activities", "activities", "activities"
    )
    assert bucket.periods == (MARCH_PERIOD,)
    assert (bucket.consumed_in_month, bucket.overage_in_month, bucket.expired_in_month) == (5, 0, 0)
    assert bucket.history == tuple(
        MonthUsage(date(y, m, 1), 5 if (y, m) == (2026, 3) else 0, 0)
        for y, m in [(2025, n) for n in range(4, 13)] + [(2026, 1), (2026, 2), (2026, 3)]
    )

    assert report.tickets_filed == 0
    assert report.tickets_by_type == () and report.tickets_by_severity == () and report.sla == ()
    assert report.activities == ActivityCounts(requested=2, scheduled=1, delivered=0, cancelled=0)
    assert report.service_credit is None and report.on_call is None
    assert report.operational == ()

    csv_rows = reports.report_csv(report).splitlines()
    assert csv_rows[0] == "section,item,period_start,period_end,measure,value,unit,display"
    for row in (
        "contract,DEMO-ADVISORY-ASSURE-MEDIUM,2026-03-01,2026-03-31,month,2026-03,,March 2026",
        "bucket,activities,2026-03-01,2026-03-31,consumed_in_month,5,activities,5 activities",
        "bucket,activities,2026-03-01,2026-03-31,expired_in_month,0,activities,0 activities",
        "period,activities,2026-02-15,2026-05-14,allowance,10,activities,10 activities",
        "period,activities,2026-02-15,2026-05-14,consumed_in_month,5,activities,5 activities",
        "period,activities,2026-02-15,2026-05-14,consumed_to_date,5,activities,5 activities",
        "period,activities,2026-02-15,2026-05-14,remaining,5,activities,5 activities",
        "period,activities,2026-02-15,2026-05-14,expiring,5,activities,5 activities",
        "period,activities,2026-02-15,2026-05-14,expired,0,activities,0 activities",
        "history,activities,2026-03-01,2026-03-31,consumed,5,activities,5 activities",
        "history,activities,2026-02-01,2026-02-28,consumed,0,activities,0 activities",
        "tickets,all,2026-03-01,2026-03-31,filed,0,tickets,",
        "activities,bookings,2026-03-01,2026-03-31,requested,2,activities,",
        "activities,bookings,2026-03-01,2026-03-31,scheduled,1,activities,",
        "activities,bookings,2026-03-01,2026-03-31,delivered,0,activities,",
    ):
        assert row in csv_rows, row
    assert not any(row.startswith(("service_credit,", "on_call,", "operational,")) for row in csv_rows)

    mail = reports.render_report_email(report, recipient_name="Acme Retail", public_url="https://entitle.example")
    assert mail.subject == "[Assure Advisory Services] March 2026 report for DEMO-ADVISORY-ASSURE-MEDIUM (Acme Retail)"
    lines = mail.text.splitlines()
    for line in (
        "Hello Acme Retail,",
        "Small activities: 5 activities used in March 2026",
        "  Period Feb 15, 2026 to May 14, 2026: 5 activities of 10 activities used, 5 activities left",
        "    expires on May 14, 2026 if not used: 5 activities",
        "  Mar 2026  ############################## 5 activities",
        "  Feb 2026                                 0 activities",
        "TICKETS FILED: 0",
        "ACTIVITIES: 2 requested, 1 scheduled, 0 delivered, 0 cancelled",
        f"See what is left and book activities: https://entitle.example/contracts/{ident}",
    ):
        assert line in lines, line
    assert "SERVICE CREDIT" not in mail.text and "ON-CALL" not in mail.text
    html = mail.html
    assert "5 activities expire on May 14, 2026 if not used" in html
    assert '<td width="100%" height="14" style="background:#2f6fb0' in html  # March's bar, the longest
    assert html.count('style="background:#2f6fb0') == 1  # the other 11 months have none
    assert "<img" not in html


async def test_demo_february_shows_the_quarter_that_expired(demo_ctx):
    ctx, clock = demo_ctx
    report = await reports.consumption_report(ctx, ADMIN, await contract_id(ctx, MEDIUM), "2026-02")
    (bucket,) = report.buckets
    assert bucket.periods == (
        PeriodLine(date(2025, 11, 15), date(2026, 2, 14), 10, 0, 0, 10, 0, 10, True, 0, 0),
        PeriodLine(date(2026, 2, 15), date(2026, 5, 14), 10, 0, 0, 10, 10, 0, False, 0, 0),
    )
    assert (bucket.consumed_in_month, bucket.expired_in_month) == (0, 10)
    assert report.activities == ActivityCounts(0, 0, 0, 0)
    assert "    expired on Feb 14, 2026: 10 activities" in reports.render_report_text(report).splitlines()


async def test_the_month_under_way_counts_up_to_now(demo_ctx):
    ctx, _ = demo_ctx  # still 2026-03-10 12:00
    report = await reports.consumption_report(ctx, ADMIN, await contract_id(ctx, MEDIUM), "2026-03")
    assert not report.complete and report.as_of == NOW
    assert report.buckets[0].periods == (MARCH_PERIOD,)
    # The code review is scheduled for 17 March: it takes place in the month though that day is to come.
    assert report.activities == ActivityCounts(2, 1, 0, 0)


# ---- buckets -----------------------------------------------------------------------------------------------


async def test_month_over_two_contract_quarters_with_units_expired(ctx, clock, make_contract):
    # Assure Small (5 a quarter) from 2026-01-15: quarters end 2026-04-14 and 2026-07-14.
    contract = await make_contract(plan="small", effective=date(2026, 1, 15))
    await ledger.consume_entitlement(ctx, ADMIN, ledger.Consumption(contract.id, "activities", Decimal(3)))  # 10 March
    clock.instant = utc(2026, 4, 20, 9)
    await ledger.consume_entitlement(ctx, ADMIN, ledger.Consumption(contract.id, "activities", Decimal(1)))
    clock.instant = utc(2026, 5, 2, 9)
    report = await reports.consumption_report(ctx, ADMIN, contract.id, "2026-04")
    (bucket,) = report.buckets
    assert bucket.periods == (
        PeriodLine(date(2026, 1, 15), date(2026, 4, 14), 5, 0, 3, 2, 0, 2, True, 0, 0),
        PeriodLine(date(2026, 4, 15), date(2026, 7, 14), 5, 1, 1, 4, 4, 0, False, 0, 0),
    )
    assert (bucket.consumed_in_month, bucket.expired_in_month) == (1, 2)
    assert [(m.month, m.consumed) for m in bucket.history if m.consumed] == [(date(2026, 3, 1), 3), (date(2026, 4, 1), 1)]
    text = reports.render_report_text(report).splitlines()
    assert "    expired on Apr 14, 2026: 2 activities" in text
    assert "    expires on Jul 14, 2026 if not used: 4 activities" in text

    # March: one quarter, 3 used, nothing expired yet.
    march = (await reports.consumption_report(ctx, ADMIN, contract.id, "2026-03")).buckets[0]
    assert march.periods == (PeriodLine(date(2026, 1, 15), date(2026, 4, 14), 5, 3, 3, 2, 2, 0, False, 0, 0),)


async def test_reversal_and_overage_in_the_month(ctx, clock, make_contract):
    # Partner support, enterprise: 10 support hours (600 minutes) a contract year from 2026-01-01.
    contract = await make_contract(
        program="partner-support", plan="enterprise", effective=date(2026, 1, 1),
        custom_allowances={"support-hours": 600},
    )
    first = await ledger.consume_entitlement(ctx, ADMIN, ledger.Consumption(contract.id, "support-hours", Decimal(450)))
    await ledger.consume_entitlement(ctx, ADMIN, ledger.Consumption(contract.id, "support-hours", Decimal(150)))
    async with ctx.db.write() as session:
        view = await contracts.load_contract_view(session, ADMIN, contract.id)
        period = view.period(view.plan.rules.buckets["support-hours"], NOW.date())
        await ledger.post_in_session(
            session, ctx, ADMIN, view, period, bucket_code="support-hours", units=45, kind=LedgerKind.OVERAGE,
            reason="worked past the allowance",
        )
    clock.instant = utc(2026, 4, 3, 10)
    await ledger.reverse_entry(ctx, ADMIN, first.entry.id, reason="billed twice")

    march = (await reports.consumption_report(ctx, ADMIN, contract.id, "2026-03")).buckets[0]
    assert march.ledger_unit == "minutes"
    assert march.periods == (PeriodLine(date(2026, 1, 1), date(2026, 12, 31), 600, 600, 600, 0, 0, 0, False, 45, 45),)
    assert (march.consumed_in_month, march.overage_in_month) == (600, 45)

    april_report = await reports.consumption_report(ctx, ADMIN, contract.id, "2026-04")
    april = april_report.buckets[0]
    assert april.periods == (PeriodLine(date(2026, 1, 1), date(2026, 12, 31), 600, -450, 150, 450, 450, 0, False, 0, 45),)
    assert [(m.month, m.consumed, m.overage) for m in april.history if m.consumed or m.overage] == [
        (date(2026, 3, 1), 600, 45), (date(2026, 4, 1), -450, 0)
    ]
    text = reports.render_report_text(april_report).splitlines()
    assert "  Period Jan 1, 2026 to Dec 31, 2026: 2 h 30 min of 10 h used, 7 h 30 min left" in text
    assert "    overage (worked past the allowance): 45 min, 0 min of it in April 2026" in text


# ---- tickets: SLA and the operational report ---------------------------------------------------------------


async def file(ctx: AppContext, clock: FixedClock, customer_id, ticket_type: str, severity: str, at: datetime):  # type: ignore[no-untyped-def]
    clock.instant = at
    return await tickets.open_ticket(
        ctx, customer_actor(customer_id), NewTicket(customer_id, ticket_type, severity, f"{ticket_type} {severity}")
    )


async def respond(ctx: AppContext, clock: FixedClock, ticket, at: datetime) -> None:  # type: ignore[no-untyped-def]
    clock.instant = at
    await tickets.add_comment(ctx, ENGINEER, ticket.id, "Looking into it.")


async def test_sla_and_operational_report(ctx, clock, make_customer, make_contract):
    # Tiered Premium: first response high 4 h, normal 8 h in office hours, Mon-Fri 08:00-16:00 Copenhagen
    # (07:00-15:00 UTC in March). Tuesday 10 March, filed 09:00 UTC, answered within office hours.
    customer = await make_customer()
    contract = await make_contract(
        program="tiered-support", plan="premium", effective=date(2026, 1, 1), customer=customer,
        currency="DKK", monthly_fee=Decimal("18500.00"),
    )
    filed = utc(2026, 3, 10, 9)
    answers = [("question", 20), ("service-request", 40), ("problem", 60), ("change", 120)]
    for ticket_type, minutes in answers:
        ticket = await file(ctx, clock, customer.id, ticket_type, "normal", filed)
        await respond(ctx, clock, ticket, utc(2026, 3, 10, 9 + minutes // 60, minutes % 60))
    late = await file(ctx, clock, customer.id, "incident", "high", filed)
    await respond(ctx, clock, late, utc(2026, 3, 10, 14))  # 5 h: the 4 h target missed
    await file(ctx, clock, customer.id, "incident", "normal", utc(2026, 3, 18, 9))  # never answered: overdue
    clock.instant = utc(2026, 4, 1, 10)

    report = await reports.consumption_report(ctx, ADMIN, contract.id, "2026-03")
    assert report.buckets == ()
    assert report.tickets_filed == 6
    assert report.tickets_by_type == (
        TicketCount("incident", "System error", 2),
        TicketCount("service-request", "Operational task", 1),
        TicketCount("question", "Sparring", 1),
        TicketCount("problem", "Problem", 1),
        TicketCount("change", "Change", 1),
    )
    assert report.tickets_by_severity == (TicketCount("high", "High", 1), TicketCount("normal", "Normal", 5))
    assert report.sla == (
        SlaLine("high", "High", "first_response", 4 * 3600, "dk-office-hours", 1, 0, 1, 0, 5 * 3600, 5 * 3600),
        # met after 20, 40, 60, 120 min: median (40 + 60) / 2 = 50 min; p90 at rank 2.7: 60 + 0.7 x 60 = 102 min
        SlaLine("normal", "Normal", "first_response", 8 * 3600, "dk-office-hours", 5, 4, 1, 0, 3000, 6120),
    )

    weekly, monthly = report.operational
    assert weekly.frequency == "weekly" and monthly.frequency == "monthly"
    # 20, 40, 60, 120 and 300 min: median 60 min; p90 at rank 3.6: 120 + 0.6 x 180 = 228 min
    assert monthly.lines == (
        OperationalLine(date(2026, 3, 1), date(2026, 3, 31), 6, 2, 1, 1, 1, 5, 3600, 13680),
    )
    assert [(line.start, line.inquiries, line.incidents, line.responded) for line in weekly.lines] == [
        (date(2026, 3, 1), 0, 0, 0), (date(2026, 3, 2), 0, 0, 0), (date(2026, 3, 9), 5, 1, 5),
        (date(2026, 3, 16), 1, 1, 0), (date(2026, 3, 23), 0, 0, 0), (date(2026, 3, 30), 0, 0, 0),
    ]
    assert weekly.lines[2].first_response_median_seconds == 3600
    assert weekly.lines[3].first_response_median_seconds is None

    text = reports.render_report_text(report).splitlines()
    assert "  Normal, first response (target 8 h): 4 met, 1 breached, 0 running; median 50 min, 90th percentile 1 h 42 min" in text
    assert "  Mar 1, 2026 to Mar 31, 2026: 6 inquiries, 2 incidents, 1 service requests, 1 problems, 1 changes; first response median 1 h, 90th percentile 3 h 48 min" in text
    csv_rows = reports.report_csv(report).splitlines()
    assert "sla,normal/first_response,2026-03-01,2026-03-31,median,3000,seconds,50 min" in csv_rows
    assert "operational,monthly,2026-03-01,2026-03-31,inquiries,6,tickets," in csv_rows
    assert report.on_call is not None and report.on_call.consultant_days == 0  # Premium offers on-call
    assert report.service_credit is None  # tiered support has no availability SLA


# ---- the month and access ----------------------------------------------------------------------------------


async def test_month_is_checked(ctx, make_contract):
    contract = await make_contract(effective=date(2026, 1, 15))
    for month, words in (
        ("2026-3", "YYYY-MM"),
        ("2026-04", "has not begun"),  # NOW is 2026-03-10
        ("2025-12", "outside the term"),
        ("1999-12", "before 2000-01"),
    ):
        with pytest.raises(ValidationFailed, match=words) as refused:
            await reports.consumption_report(ctx, ADMIN, contract.id, month)
        assert refused.value.field == "month"


async def test_only_who_may_read_the_contract(ctx, make_customer, make_contract):
    owner = await make_customer()
    contract = await make_contract(customer=owner)
    report = await reports.consumption_report(ctx, customer_actor(owner.id), contract.id, "2026-03")
    assert report.contract_id == contract.id
    stranger = await make_customer()
    with pytest.raises(NotFound) as refused:
        await reports.consumption_report(ctx, customer_actor(stranger.id), contract.id, "2026-03")
    assert refused.value.field == "contractId"

"""Demo data: the shipped programs, customers, partners and a contract on every shipped plan.

Idempotent: every object has a stable code or reference and every consumption an idempotency key,
so running it again changes nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select

from api.domain.calendars import compile_calendar
from api.domain.periods import add_months
from api.models import (
    Booking,
    BookingStatus,
    Contract,
    Customer,
    OnCallReservation,
    Outage,
    Partner,
    StaffRole,
    Ticket,
    User,
    UserKind,
)
from api.programs.loader import read_program_file
from api.services import availability, bookings, contracts, identity, ledger, on_call, parties, programs, tickets
from api.services.context import Actor, AppContext, FixedClock

__all__ = ["DemoReport", "load_demo"]

ACTOR = Actor.system("demo")

CUSTOMERS = [
    ("acme-retail", "Acme Retail", "it@acme-retail.example", "DE"),
    ("globex", "Globex Manufacturing", "support@globex.example", "ES"),
    ("initech", "Initech", "ops@initech.example", "FR"),
    ("umbrella-health", "Umbrella Health", "helpdesk@umbrella-health.example", "DK"),
    ("hooli-media", "Hooli Media", "platform@hooli-media.example", "GB"),
    ("stark-logistics", "Stark Logistics", "it@stark-logistics.example", "DK"),
]
PARTNERS = [
    # (code, name, email, certified for how many months from today; None: never certified)
    ("northwind-solutions", "Northwind Solutions", "support@northwind.example", 12),
    ("bluefin-digital", "Bluefin Digital", "hello@bluefin.example", None),
]
LINKS = [
    # (partner, customer, managed, production access, may book and take part in activities)
    ("northwind-solutions", "globex", True, True, True),
    # Works with Acme without managing it: Acme lets it take part in activities (it cannot book them).
    ("northwind-solutions", "acme-retail", False, False, True),
    ("bluefin-digital", "initech", True, False, False),
]
# Which customer holds the demo contract of each plan, and the per-contract allowances of Custom plans.
CUSTOMER_OF_PROGRAM = {
    "advisory-assure": "acme-retail",
    "partner-support": "globex",
    "premium-availability": "hooli-media",
    "support-by-plan": "initech",
    "tiered-support": "umbrella-health",
}
CUSTOM_ALLOWANCES = {
    ("advisory-assure", "custom"): {"activities": 15},
    ("partner-support", "enterprise"): {"support-hours": 40 * 60},
    ("partner-support", "premium"): {"support-hours": 20 * 60},
}
# Who receives the monthly report, where the customer named someone (the others get it at their own address,
# or, when managed, through their partner).
REPORT_CONTACTS = {
    "acme-retail": ["anna@acme-retail.example", "finance@acme-retail.example"],
    "hooli-media": ["platform@hooli-media.example", "billing@hooli-media.example"],
}
DEMO_PASSWORD = "entitle-demo-2026"
# (e-mail, name, kind, staff role, customer code, partner code): one user of each role.
USERS = [
    ("admin@entitle.example", "Ada Admin", "staff", "admin", None, None),
    ("client.manager@entitle.example", "Carl Manager", "staff", "client_manager", None, None),
    ("support@entitle.example", "Sam Support", "staff", "support_engineer", None, None),
    ("anna@acme-retail.example", "Anna (Acme Retail, direct customer)", "customer", None, "acme-retail", None),
    ("gus@globex.example", "Gus (Globex, managed by Northwind)", "customer", None, "globex", None),
    ("nora@northwind.example", "Nora (Northwind, certified partner)", "partner", None, None, "northwind-solutions"),
    ("ben@bluefin.example", "Ben (Bluefin, uncertified partner)", "partner", None, None, "bluefin-digital"),
]
FEES = {"EUR": Decimal("2500.00"), "DKK": Decimal("18500.00")}


@dataclass
class DemoReport:
    programs: list[str] = field(default_factory=list)
    customers_created: int = 0
    partners_created: int = 0
    contracts_created: int = 0
    consumptions: int = 0
    contract_references: list[str] = field(default_factory=list)
    users_created: int = 0
    bookings: int = 0
    tickets: int = 0
    outages: int = 0
    on_call_reservations: int = 0
    logins: list[tuple[str, str, str]] = field(default_factory=list)  # (e-mail, password, who)


async def load_demo(ctx: AppContext, programs_dir: Path) -> DemoReport:
    report = DemoReport()
    parsed = [read_program_file(path) for path in sorted(programs_dir.glob("*.toml"))]
    for outcome in await programs.load_programs(ctx, ACTOR, parsed):
        report.programs.append(f"{outcome.code} ({outcome.status})")

    today = ctx.now().date()
    async with ctx.db.read() as session:
        customers = {c.code: c for c in await session.scalars(select(Customer))}
        partners = {p.code: p for p in await session.scalars(select(Partner))}
        existing_refs = set(await session.scalars(select(Contract.reference)))
        existing_users = set(await session.scalars(select(User.email)))

    for code, name, email, country in CUSTOMERS:
        if code not in customers:
            customers[code] = await parties.create_customer(
                ctx, ACTOR, parties.NewCustomer(code=code, name=name, email=email, country=country)
            )
            report.customers_created += 1
    for code, contacts in REPORT_CONTACTS.items():
        if not customers[code].report_contacts:
            customers[code] = await parties.set_report_contacts(ctx, ACTOR, customers[code].id, contacts)
    for code, name, email, months in PARTNERS:
        if code not in partners:
            until = None if months is None else add_months(today, months)
            partners[code] = await parties.create_partner(
                ctx, ACTOR, parties.NewPartner(code=code, name=name, email=email, certified_until_date=until)
            )
            report.partners_created += 1
    for partner, customer, managed, production, books in LINKS:
        await parties.link_partner(
            ctx,
            ACTOR,
            partner_id=partners[partner].id,
            customer_id=customers[customer].id,
            managed=managed,
            production_access=production,
            can_book_activities=books,
        )

    for email, name, kind, role, customer, partner in USERS:
        report.logins.append((email, DEMO_PASSWORD, name))
        if email in existing_users:
            continue
        await identity.create_user(
            ctx,
            ACTOR,
            identity.NewUser(
                email=email,
                name=name,
                password=DEMO_PASSWORD,
                kind=UserKind(kind),
                staff_role=None if role is None else StaffRole(role),
                customer_id=None if customer is None else customers[customer].id,
                partner_id=None if partner is None else partners[partner].id,
            ),
        )
        report.users_created += 1

    for record, plans in await programs.list_programs(ctx, ACTOR):
        program = programs.program_model(record)
        for plan in plans:
            reference = f"DEMO-{record.code}-{plan.record.code}".upper()
            report.contract_references.append(reference)
            if reference not in existing_refs:
                effective, end = _term(reference, today)
                await contracts.create_contract(
                    ctx,
                    ACTOR,
                    contracts.NewContract(
                        reference=reference,
                        customer_id=customers[CUSTOMER_OF_PROGRAM.get(record.code, "acme-retail")].id,
                        program_code=record.code,
                        plan_code=plan.record.code,
                        effective_date=effective,
                        end_date=end,
                        monthly_fee=FEES.get(program.currency, Decimal("1000.00")),
                        currency=program.currency,
                        custom_allowances=CUSTOM_ALLOWANCES.get((record.code, plan.record.code), {}),
                        client_manager_email=USERS[1][0],
                    ),
                )
                report.contracts_created += 1
            report.consumptions += await _demo_consumption(ctx, reference, plan.rules.buckets, today)
    report.bookings += await _demo_bookings(ctx, today)
    report.bookings += await _demo_past_bookings(ctx)
    report.tickets += await _demo_tickets(ctx)
    report.outages += await _demo_outage(ctx, today)
    report.on_call_reservations += await _demo_on_call(ctx, today)
    return report


def _term(reference: str, today: date) -> tuple[date, date]:
    """Terms started on the 15th about four months ago, so every demo contract is in force and
    contract-anchored quarters do not line up with calendar quarters; Assure Small's started so that its
    quarter ends in two weeks with units left, which shows the "expiring soon" warning."""
    if reference == EXPIRING_SOON:
        effective = add_months(today + timedelta(days=15), -6)
        return effective, add_months(effective, 12) - timedelta(days=1)
    effective = add_months(today, -4).replace(day=15)
    return effective, add_months(effective, 12).replace(day=14)


EXPIRING_SOON = "DEMO-ADVISORY-ASSURE-SMALL"
# Bookings on these contracts: (reference, activity, scheduled too).
DEMO_BOOKINGS = [
    ("DEMO-ADVISORY-ASSURE-MEDIUM", "code-review", True),
    ("DEMO-ADVISORY-ASSURE-MEDIUM", "advisory-call", False),
    ("DEMO-PREMIUM-AVAILABILITY-PREMIUM-16", "schema-review", True),
]


async def _demo_bookings(ctx: AppContext, today: date) -> int:
    """A week from today: one activity scheduled (10:00 in the program's time zone) and one only requested,
    on contracts that have no bookings yet, so a later run adds none."""
    made = 0
    day = today + timedelta(days=7)
    for reference, activity, scheduled in DEMO_BOOKINGS:
        async with ctx.db.read() as session:
            contract = await session.scalar(select(Contract).where(Contract.reference == reference))
            if contract is None or not contract.is_active_on(day):
                continue
            booked_before = await session.scalar(
                select(Booking.id).where(Booking.contract_id == contract.id, Booking.activity_code == activity)
            )
        if booked_before is not None:
            continue
        outcome = await bookings.book_activity(
            ctx, ACTOR, bookings.NewBooking(contract.id, activity, day, note="Demo: booked by the demo data")
        )
        if scheduled:
            plan = (await programs.get_plans_by_ids(ctx, ACTOR, [contract.plan_id]))[contract.plan_id]
            starts = datetime.combine(day, time(10), ZoneInfo(plan.program.timezone))
            await bookings.schedule_booking(ctx, ACTOR, bookings.Schedule(outcome.booking.id, starts))
        made += 1
    return made


async def _demo_consumption(ctx: AppContext, reference: str, buckets: dict, today: date) -> int:
    async with ctx.db.read() as session:
        contract = await session.scalar(select(Contract).where(Contract.reference == reference))
    if contract is None or not contract.is_active_on(today):
        return 0
    count = 0
    for code, bucket in buckets.items():
        # A couple of activities, or 90 minutes of expert time, used today.
        quantity = Decimal(2) if bucket.unit == "activities" else Decimal(90)
        quantity = max(quantity - quantity % bucket.increment, Decimal(bucket.increment))
        await ledger.consume_entitlement(
            ctx,
            ACTOR,
            ledger.Consumption(
                contract_id=contract.id,
                bucket=code,
                quantity=quantity,
                reason="Demo: kick-off session" if bucket.unit == "hours" else "Demo: architecture review",
                # No date and a fixed key: a later run replays the first result instead of consuming again.
                idempotency_key=f"demo-{code}",
            ),
        )
        count += 1
    return count


async def _demo_outage(ctx: AppContext, today: date) -> int:
    """90 minutes of half the service down on the 12th of last month, on the Premium 16 contract: 10 % of
    half its month's fee comes back as a service credit (EUR 125.00 on the demo fee). Once per contract."""
    async with ctx.db.read() as session:
        contract = await session.scalar(
            select(Contract).where(Contract.reference == "DEMO-PREMIUM-AVAILABILITY-PREMIUM-16")
        )
        if contract is None:
            return 0
        if await session.scalar(select(Outage.id).where(Outage.contract_id == contract.id)) is not None:
            return 0
    day = add_months(today.replace(day=1), -1).replace(day=12)
    if not contract.is_active_on(day):
        return 0
    started = datetime.combine(day, time(2), ZoneInfo("UTC"))
    await availability.record_outage(
        ctx,
        ACTOR,
        availability.NewOutage(
            started_at=started, ended_at=started + timedelta(minutes=90), impacted_portion=Decimal("0.5"),
            note="Demo: the checkout API was unavailable in one of two regions", contract_id=contract.id,
        ),
    )
    return 1


async def _demo_on_call(ctx: AppContext, today: date) -> int:
    """Two consultants on call on the first Saturday at least a week from today, on the tiered Premium
    contract. Once per contract."""
    async with ctx.db.read() as session:
        contract = await session.scalar(select(Contract).where(Contract.reference == "DEMO-TIERED-SUPPORT-PREMIUM"))
        if contract is None:
            return 0
        if await session.scalar(select(OnCallReservation.id).where(OnCallReservation.contract_id == contract.id)):
            return 0
    day = today + timedelta(days=7)
    day += timedelta(days=(5 - day.weekday()) % 7)
    if not contract.is_active_on(day):
        return 0
    reserved = await on_call.reserve_on_call(
        ctx,
        ACTOR,
        on_call.NewReservation(
            contract.id, [day], consultants=2, day_rate=Decimal("4200.00"), window="weekends",
            note="Demo: stand-by for a campaign launch",
        ),
    )
    return len(reserved)


# Activities of the days before the demo was loaded: (reference, activity, what became of it). Both are booked
# and scheduled ten days back; one is marked delivered now, the other was cancelled then: every status shows.
DEMO_PAST_BOOKINGS = [
    ("DEMO-ADVISORY-ASSURE-LARGE", "architecture-review", BookingStatus.DELIVERED),
    ("DEMO-ADVISORY-ASSURE-LARGE", "code-review", BookingStatus.CANCELLED),
]


def _at(ctx: AppContext, instant: datetime) -> AppContext:
    """The same database as `ctx`, with a clock standing at `instant`: how the demo writes its past."""
    return AppContext(db=ctx.db, settings=ctx.settings, clock=FixedClock(instant))


async def _demo_past_bookings(ctx: AppContext) -> int:
    """Once per contract and activity: one booking delivered and one cancelled."""
    made = 0
    now = ctx.now()
    for reference, activity, outcome in DEMO_PAST_BOOKINGS:
        async with ctx.db.read() as session:
            contract = await session.scalar(select(Contract).where(Contract.reference == reference))
            if contract is None:
                continue
            booked_before = await session.scalar(
                select(Booking.id).where(Booking.contract_id == contract.id, Booking.activity_code == activity)
            )
        past = now - timedelta(days=10)
        day = past.date() + timedelta(days=1)
        if booked_before is not None or not contract.is_active_on(past.date()) or not contract.is_active_on(day):
            continue
        then = _at(ctx, past)
        booked = await bookings.book_activity(
            then, ACTOR, bookings.NewBooking(contract.id, activity, day, note="Demo: booked ten days ago")
        )
        plan = (await programs.get_plans_by_ids(ctx, ACTOR, [contract.plan_id]))[contract.plan_id]
        starts = datetime.combine(day, time(10), ZoneInfo(plan.program.timezone))
        await bookings.schedule_booking(then, ACTOR, bookings.Schedule(booked.booking.id, starts))
        if outcome == BookingStatus.DELIVERED:
            await bookings.deliver_booking(ctx, ACTOR, booked.booking.id, "Demo: took place as planned")
        else:
            await bookings.cancel_booking(then, ACTOR, booked.booking.id, "Demo: no longer needed")
        made += 1
    return made


# Open tickets in each SLA state: one breached long ago, one at risk now.
BREACHED_SUBJECT = "Demo: checkout export fails for every order"
AT_RISK_SUBJECT = "Demo: how do we rotate the API keys?"


async def _demo_tickets(ctx: AppContext) -> int:
    """A Globex incident filed a week ago that nobody answered (its first response is breached), and a
    Hooli question whose first-response clock is at 85 % of its target now. The breached one is filed once;
    the at-risk one again whenever no demo ticket is at risk any more (an SLA state passes with time)."""
    made = 0
    async with ctx.db.read() as session:
        customers = {c.code: c for c in await session.scalars(select(Customer))}
        subjects = set(await session.scalars(select(Ticket.subject).where(Ticket.subject.like("Demo:%"))))
    if BREACHED_SUBJECT not in subjects and "globex" in customers:
        await tickets.open_ticket(
            _at(ctx, ctx.now() - timedelta(days=7)),
            ACTOR,
            tickets.NewTicket(
                customer_id=customers["globex"].id, ticket_type="incident", severity="critical",
                subject=BREACHED_SUBJECT,
                description="Since this morning's deployment the nightly export to the ERP stops at the first order.",
                affected_account="globex-prod", steps_followed="Run the nightly export from the admin console.",
                expected_result="Every order of the day is exported.",
            ),
        )
        made += 1
    if "hooli-media" in customers and not (await _demo_ticket_at_risk(ctx, customers["hooli-media"].id)):
        filed = await _filed_for_share(ctx, "premium-availability", "premium-16", "s4", Decimal("0.85"))
        if filed is not None:
            await tickets.open_ticket(
                _at(ctx, filed),
                ACTOR,
                tickets.NewTicket(
                    customer_id=customers["hooli-media"].id, ticket_type="question", severity="s4",
                    subject=AT_RISK_SUBJECT,
                    description="We want to rotate the keys of our delivery API without downtime. Is there a guide?",
                ),
            )
            made += 1
    return made


async def _demo_ticket_at_risk(ctx: AppContext, customer_id: uuid.UUID) -> bool:
    page = await tickets.list_tickets(ctx, ACTOR, customer_id=customer_id, at_risk=True, text="Demo:", first=1)
    return bool(page.views)


async def _filed_for_share(ctx: AppContext, program: str, plan: str, severity: str, share: Decimal) -> datetime | None:
    """When a ticket must have been filed for `share` of its first-response target to have elapsed by now,
    on the target's own support calendar (a binary search over open time, to the second)."""
    record, _ = await programs.get_program(ctx, ACTOR, program)
    model = programs.program_model(record)
    target = model.plans[plan].severities[severity].first_response
    if target is None or target.duration_minutes is None or target.calendar is None:
        return None
    calendar = compile_calendar(model.calendars[target.calendar])
    wanted = int(target.duration_minutes * 60 * share)
    now = ctx.now()
    low, high = now - timedelta(days=30), now
    for _ in range(40):
        middle = low + (high - low) / 2
        if calendar.between(middle, now) > wanted:
            low = middle
        else:
            high = middle
    return high.replace(microsecond=0)

"""Demo data: the shipped programs, customers, partners and a contract on every shipped plan.

Idempotent: every object has a stable code or reference and every consumption an idempotency key,
so running it again changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select

from api.domain.periods import add_months
from api.models import Booking, Contract, Customer, Partner, StaffRole, User, UserKind
from api.programs.loader import read_program_file
from api.services import bookings, contracts, identity, ledger, parties, programs
from api.services.context import Actor, AppContext

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

    # Terms started on the 15th about four months ago, so every demo contract is in force and
    # contract-anchored quarters do not line up with calendar quarters.
    effective = add_months(today, -4).replace(day=15)
    end = add_months(effective, 12).replace(day=14)
    for record, plans in await programs.list_programs(ctx, ACTOR):
        program = programs.program_model(record)
        for plan in plans:
            reference = f"DEMO-{record.code}-{plan.record.code}".upper()
            report.contract_references.append(reference)
            if reference not in existing_refs:
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
    return report


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

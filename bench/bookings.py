"""Bookings benchmark: book_activity per second (sequential, and 20 bookers racing on one contract),
cancel_booking per second, and the expiry-reminder job over many contracts in force.

    .venv/bin/python bench/bookings.py [--database-url URL] [--bookings N] [--race-units N] [--contracts N]

Without --database-url it uses a throw-away SQLite file; a PostgreSQL database is taken as given (a
scratch database: the script writes thousands of rows and leaves them there), e.g.

    createdb -h 127.0.0.1 -U postgres entitle_bench
    .venv/bin/python bench/bookings.py --database-url postgresql://postgres@127.0.0.1:5432/entitle_bench
    dropdb -h 127.0.0.1 -U postgres entitle_bench

The clock stands at 2026-06-01 12:00 UTC. Every contract is on an Assure plan (advisory-assure,
quarters counted from the contract's effective date, expiry warning 30 days):

* reminders: --contracts contracts in force, one customer each, all with the same client manager; one
  customer in ten is managed by a partner (the partner is written to instead). A third of them started
  on 2025-12-20, so their quarter ends on 2026-06-19 (18 days away) with units left; the others started
  on 2026-01-15 (quarter ends 2026-07-14). Half have 1 unit consumed in their current quarter. Customers,
  partner links, contracts, balance rows, ledger entries and their audit rows are inserted in bulk with
  the values the services write; only the job is timed. It runs twice: the first run queues two
  messages per expiring contract (correspondent and client manager), the second finds them all queued.
* bookings: 20 contracts on Assure Custom with 1,000,000 activities a quarter; --bookings book_activity
  calls (one transaction each: booking row, guarded balance update, ledger entry, audit rows, outbox
  message to the client manager), round-robin over the contracts and the catalog (sizes 1 to 5), for
  today. Then 20 concurrent bookers on one contract with --race-units activities: each books sizes
  1, 2, 3 in turn, switches to size 1 when refused, and stops when size 1 is refused; the balance must
  end exactly at the allowance. Then every sequential booking is cancelled, one call each.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from sqlalchemy import event, func, insert, select

from api.config import PROJECT_ROOT, Settings
from api.db import Database
from api.jobs.reminders import queue_expiry_reminders
from api.migrate import upgrade
from api.models import (
    AuditEntry,
    Contract,
    Customer,
    EntitlementBalance,
    LedgerEntry,
    LedgerKind,
    OutboxMessage,
    PartnerCustomer,
    StaffRole,
    UserKind,
)
from api.programs.loader import read_program_file
from api.services import bookings, contracts, identity, ledger, parties, programs
from api.services.context import Actor, AppContext, FixedClock
from api.services.contracts import ContractView
from api.services.errors import InsufficientBalance

ADMIN = Actor.system("bench")
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
TODAY = NOW.date()
PROGRAM = "advisory-assure"
BUCKET = "activities"
MANAGER_EMAIL = "manager@bench.example"
EXPIRING = (date(2025, 12, 20), date(2026, 12, 19))  # quarter 2026-03-20 to 2026-06-19: 18 days left
NOT_EXPIRING = (date(2026, 1, 15), date(2027, 1, 14))  # quarter 2026-04-15 to 2026-07-14: 43 days left
BOOKING_TERM = (date(2026, 5, 1), date(2027, 4, 30))  # quarter 2026-05-01 to 2026-07-31
ROOM = 1_000_000
BOOKERS = 20


def _audit(action: str, target_type: str, target_id: object, customer_id: uuid.UUID, detail: dict) -> dict:
    """An audit row as audit.record writes it for ADMIN."""
    return {
        "id": uuid.uuid4(), "occurred_at": NOW, "actor_kind": ADMIN.kind, "actor_ref": ADMIN.ref,
        "actor_name": ADMIN.name, "partner_id": None, "on_behalf_of_customer_id": customer_id,
        "interface": ADMIN.interface, "action": action, "target_type": target_type, "target_id": str(target_id),
        "detail": detail,
    }


async def _insert(ctx: AppContext, model: type, rows: list[dict], chunk: int = 1000) -> None:
    async with ctx.db.write() as session:
        for n in range(0, len(rows), chunk):
            await session.execute(insert(model), rows[n : n + chunk])


async def _setup_reminders(ctx: AppContext, count: int, manager_id: uuid.UUID) -> int:
    """`count` contracts in force, a third expiring soon with units left; returns how many expire soon."""
    partner = await parties.create_partner(
        ctx, ADMIN, parties.NewPartner(code="bench-partner", name="Bench Partner", email="partner@bench.example")
    )
    (_, plans), = await programs.list_programs(ctx, ADMIN, code=PROGRAM)
    plan_views = [p for p in plans if p.record.code in ("small", "medium", "large", "custom")]
    customers, links, rows, balances, entries, audits = [], [], [], [], [], []
    expiring = 0
    for i in range(count):
        customer_id = uuid.uuid4()
        code = f"bench-{i:06d}"
        customers.append({
            "id": customer_id, "code": code, "name": f"Bench Customer {i}", "email": f"it@{code}.example",
            "country": "DK", "created_at": NOW,
        })
        audits.append(_audit("customer.create", "customer", customer_id, customer_id, {"code": code}))
        if i % 10 == 0:
            links.append({
                "partner_id": partner.id, "customer_id": customer_id, "managed": True, "production_access": False,
                "can_file_tickets": True, "can_view_entitlements": True, "can_book_activities": False,
                "created_at": NOW,
            })
            audits.append(_audit("partner.link", "partner", partner.id, customer_id, {
                "managed": True, "production_access": False, "can_file_tickets": True,
                "can_view_entitlements": True, "can_book_activities": False,
            }))
        plan = plan_views[i % len(plan_views)]
        effective, end = EXPIRING if i % 3 == 0 else NOT_EXPIRING
        expiring += i % 3 == 0
        contract = Contract(
            id=uuid.uuid4(), reference=f"BENCH-R{i:06d}", customer_id=customer_id, plan_id=plan.record.id,
            effective_date=effective, end_date=end, monthly_fee=Decimal("1000.00"), currency="EUR",
            custom_allowances={BUCKET: 30} if plan.rules.buckets[BUCKET].allowance == "contract" else {},
            catalog=None, client_manager_id=manager_id, created_at=NOW,
        )
        rows.append({c: getattr(contract, c) for c in (
            "id", "reference", "customer_id", "plan_id", "effective_date", "end_date", "monthly_fee", "currency",
            "custom_allowances", "catalog", "client_manager_id", "created_at",
        )})
        audits.append(_audit("contract.create", "contract", contract.id, customer_id,
                             {"reference": contract.reference, "plan": f"{PROGRAM}/{plan.record.code}"}))
        if i % 2 == 0:  # one unit consumed in the current quarter, as ledger.consume_entitlement writes it
            view = ContractView(contract, plan)
            period = view.period(plan.rules.buckets[BUCKET], TODAY)
            assert period is not None
            balances.append({
                "contract_id": contract.id, "bucket_code": BUCKET, "period_start": period.start,
                "period_end": period.end, "allowance": view.allowance(BUCKET), "consumed": 1, "overage": 0,
                "updated_at": NOW,
            })
            entry_id = uuid.uuid4()
            reason = "Bench: advisory call"
            entries.append({
                "id": entry_id, "contract_id": contract.id, "bucket_code": BUCKET, "period_start": period.start,
                "period_end": period.end, "quantity": 1, "kind": LedgerKind.CONSUME, "reason": reason,
                "actor_kind": ADMIN.kind, "actor_ref": ADMIN.ref, "on_behalf_of_customer_id": None,
                "idempotency_key": None, "request_hash": ledger.hash_request(
                    "consume", bucket=BUCKET, quantity="1", on=None, reason=reason, on_behalf_of=None
                ),
                "reverses_entry_id": None, "ticket_id": None, "time_entry_id": None, "booking_id": None,
                "created_at": NOW,
            })
            audits.append(_audit("ledger.consume", "ledger_entry", entry_id, customer_id,
                                 {"contract": contract.reference, "bucket": BUCKET, "quantity": 1}))
    await _insert(ctx, Customer, customers)
    await _insert(ctx, PartnerCustomer, links)
    await _insert(ctx, Contract, rows)
    await _insert(ctx, EntitlementBalance, balances)
    await _insert(ctx, LedgerEntry, entries)
    await _insert(ctx, AuditEntry, audits)
    return expiring


async def _booking_contract(ctx: AppContext, reference: str, allowance: int):  # type: ignore[no-untyped-def]
    customer = await parties.create_customer(
        ctx, ADMIN, parties.NewCustomer(code=reference.lower(), name=reference, email=f"it@{reference.lower()}.example")
    )
    return await contracts.create_contract(
        ctx,
        ADMIN,
        contracts.NewContract(
            reference=reference, customer_id=customer.id, program_code=PROGRAM, plan_code="custom",
            effective_date=BOOKING_TERM[0], end_date=BOOKING_TERM[1], monthly_fee=Decimal("2500.00"),
            currency="EUR", custom_allowances={BUCKET: allowance}, client_manager_email=MANAGER_EMAIL,
        ),
    )


async def _consumed(ctx: AppContext, contract_id: uuid.UUID) -> int:
    (period,) = await contracts.entitlements(ctx, ADMIN, contract_id)
    return period.consumed


async def _race(ctx: AppContext, contract_id: uuid.UUID, sizes: dict[int, str]) -> tuple[int, int, int]:
    """BOOKERS bookers on one contract until it is full; returns (bookings, units booked, refusals)."""
    booked = units = refused = 0

    async def booker(n: int) -> None:
        nonlocal booked, units, refused
        turn, only_ones = n, False
        while True:
            size = 1 if only_ones else 1 + turn % 3
            turn += 1
            try:
                outcome = await bookings.book_activity(
                    ctx, ADMIN, bookings.NewBooking(contract_id=contract_id, activity=sizes[size], on=TODAY)
                )
            except InsufficientBalance:
                refused += 1
                if size == 1:
                    return
                only_ones = True
                continue
            booked += 1
            units += outcome.booking.units

    await asyncio.gather(*(booker(n) for n in range(BOOKERS)))
    return booked, units, refused


async def main(url: str, count: int, sequential: int, race_units: int) -> None:
    upgrade(url)
    db = Database(url)
    ctx = AppContext(db=db, settings=Settings(database_url=url), clock=FixedClock(NOW))
    statements = 0

    @event.listens_for(db.engine.sync_engine, "before_cursor_execute")
    def _count(*_args):  # type: ignore[no-untyped-def]
        nonlocal statements
        statements += 1

    began = time.perf_counter()
    await programs.load_programs(
        ctx, ADMIN, [read_program_file(p) for p in sorted((PROJECT_ROOT / "programs").glob("*.toml"))]
    )
    manager = await identity.create_user(
        ctx, ADMIN, identity.NewUser(email=MANAGER_EMAIL, name="Bench Manager", password="bench-password-2026",
                                     kind=UserKind.STAFF, staff_role=StaffRole.CLIENT_MANAGER),
    )
    expected_expiring = await _setup_reminders(ctx, count, manager.id)
    setup = time.perf_counter() - began

    # ---- the expiry-reminder job -------------------------------------------------------------------
    statements, start = 0, time.perf_counter()
    first = await queue_expiry_reminders(ctx)
    first_time, first_statements = time.perf_counter() - start, statements
    statements, start = 0, time.perf_counter()
    second = await queue_expiry_reminders(ctx)
    second_time, second_statements = time.perf_counter() - start, statements
    async with ctx.db.read() as session:
        in_outbox = await session.scalar(select(func.count()).where(OutboxMessage.kind == "expiry_reminder"))
    assert first.expiring == expected_expiring, (first, expected_expiring)
    assert first.queued == in_outbox == 2 * expected_expiring, (first, in_outbox)
    assert second.queued == 0 and second.contracts == first.contracts, second

    # ---- bookings ----------------------------------------------------------------------------------
    catalog = await bookings.activity_catalog(ctx, ADMIN, PROGRAM, "custom")
    codes = [item.code for item in catalog]
    sizes = {item.offer.units: item.code for item in reversed(catalog) if item.offer is not None}
    made = [await _booking_contract(ctx, f"BENCH-B{n:02d}", ROOM) for n in range(20)]
    racing = await _booking_contract(ctx, "BENCH-RACE", race_units)

    start = time.perf_counter()
    booked = []
    for n in range(sequential):
        outcome = await bookings.book_activity(
            ctx, ADMIN,
            bookings.NewBooking(contract_id=made[n % len(made)].id, activity=codes[n % len(codes)], on=TODAY),
        )
        booked.append(outcome.booking)
    sequential_rate = sequential / (time.perf_counter() - start)
    async with ctx.db.read() as session:
        requested = await session.scalar(select(func.count()).where(OutboxMessage.kind == "booking_requested"))
    units_booked = sum(b.units for b in booked)
    consumed = sum([await _consumed(ctx, c.id) for c in made])
    assert consumed == units_booked, (consumed, units_booked)

    start = time.perf_counter()
    raced, raced_units, refusals = await _race(ctx, racing.id, sizes)
    race_time = time.perf_counter() - start
    race_consumed = await _consumed(ctx, racing.id)

    start = time.perf_counter()
    for booking in booked:
        await bookings.cancel_booking(ctx, ADMIN, booking.id, "bench")
    cancel_rate = len(booked) / (time.perf_counter() - start)
    left = sum([await _consumed(ctx, c.id) for c in made])
    await db.dispose()

    print(f"database: {db.dialect}")
    print(f"setup (programs, {count:,} contracts in bulk): {setup:.1f} s")
    print(f"sequential book_activity: {sequential_rate:,.0f}/s ({sequential:,} bookings, {units_booked:,} units, "
          f"{requested:,} client-manager messages queued)")
    print(f"{BOOKERS} concurrent bookers, one contract: {raced / race_time:,.0f}/s ({raced:,} bookings in "
          f"{race_time:.1f} s, {refusals} refusals)")
    verdict = "ok" if race_consumed == race_units == raced_units else "WRONG"
    print(f"  balance after the race: {race_consumed:,} consumed of {race_units:,} "
          f"(units in bookings {raced_units:,}): {verdict}")
    print(f"cancel_booking: {cancel_rate:,.0f}/s ({len(booked):,} cancelled; {left} units still consumed: "
          f"{'ok' if left == 0 else 'WRONG'})")
    print(f"expiry reminders, first run:  {first_time:.2f} s, {first.contracts:,} contracts checked "
          f"({first.contracts / first_time:,.0f}/s), {first.expiring:,} periods expiring soon, "
          f"{first.queued:,} messages queued, {first_statements:,} SQL statements")
    print(f"expiry reminders, second run: {second_time:.2f} s, {second.contracts:,} contracts checked "
          f"({second.contracts / second_time:,.0f}/s), {second.queued} messages queued, "
          f"{second_statements:,} SQL statements")
    if verdict != "ok" or left != 0:
        raise SystemExit(1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url")
    parser.add_argument("--bookings", type=int, default=500)
    parser.add_argument("--race-units", type=int, default=1_000)
    parser.add_argument("--contracts", type=int, default=5_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(
            main(args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}", args.contracts, args.bookings,
                 args.race_units)
        )

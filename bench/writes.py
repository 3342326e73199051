"""Writes: consumptions and bookings per second with 8 concurrent clients (and one, for comparison), spread
over the contracts of a generated data set, then the ledger reconciled.

    .venv/bin/python bench/writes.py [--database-url postgresql://postgres@127.0.0.1:5432/postgres]
                                     [--customers 200] [--operations 300] [--rounds 3] [--clients 8]

Without --database-url a throw-away SQLite file; with it, a scratch database created on that PostgreSQL server
and dropped at the end. Either is migrated and filled with `entitle generate --customers N --seed 1 --now
2026-11-30T12:00:00+00:00`; the services then run in this process with the clock at that instant, as a system
actor, through one connection pool (as one web process would).

* consume: `consume_entitlement` (what `consumeEntitlement` calls) of the smallest amount a bucket counts (one
  activity, or its increment of minutes), today, on every contract in force with room left;
* book: `book_activity` (what `bookActivity` calls) of the contract's cheapest activity in each bucket, for
  today or for the first day of one of the next periods of the term, where the period has room for it.

The calls go round-robin over those contracts (and days), so concurrent clients rarely meet on one balance;
each slot is used no more times than its period has room for (today's period of a bookable bucket is
shared half and half), so nothing should be refused (a refusal is counted, and fails the run). Each round
runs --operations calls of each kind with --clients concurrent clients and with one client (A B / B A
across rounds); figures are the medians of the rounds. Then `entitle reconcile`'s check (every balance
against the sum of its ledger) must find nothing, and the ledger must have grown by exactly one entry per
call made. No numeric goal: issue 14 asks for the figures on both backends, and reconcile clean after.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sqlalchemy import func, select  # noqa: E402

from api.config import Settings  # noqa: E402
from api.db import Database  # noqa: E402
from api.jobs.reconcile import reconcile_ledger  # noqa: E402
from api.models import Contract, LedgerEntry  # noqa: E402
from api.services import bookings, contracts, ledger  # noqa: E402
from api.services.context import Actor, AppContext, FixedClock  # noqa: E402
from api.services.contracts import EntitlementPeriod  # noqa: E402
from api.services.errors import InsufficientBalance  # noqa: E402
from bench._load import clean_env, entitle, machine, scratch_database  # noqa: E402

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
ACTOR = Actor.system("bench")
FUTURE_PERIODS = 4  # book into today's period and up to this many after it


@dataclass
class Slot:
    """One call that may be made `room` more times: its arguments."""

    contract_id: uuid.UUID
    what: str  # the bucket (consume) or the activity (book)
    units: int
    day: date | None  # None: today
    room: int


def _round_robin(slots: list[Slot], count: int) -> list[Slot]:
    """`count` calls, one slot after another, each used only while it has room."""
    calls: list[Slot] = []
    live = [s for s in slots if s.room > 0]
    while len(calls) < count and live:
        for slot in live:
            if len(calls) == count:
                break
            calls.append(slot)
            slot.room -= 1
        live = [s for s in live if s.room > 0]
    if len(calls) < count:
        raise SystemExit(f"the generated contracts have room for only {len(calls)} of {count} calls: "
                         "use more --customers or fewer --operations")
    return calls


def _consume_room(p: EntitlementPeriod, bookable: bool) -> int:
    """How many consumptions today's period of a bucket takes: half its room where bookings draw on it too."""
    return (p.remaining // 2 if bookable else p.remaining) // p.bucket.increment


async def _consume_slots(ctx: AppContext, ids: list[uuid.UUID]) -> list[Slot]:
    slots = []
    for view, periods in await contracts.current_entitlements(ctx, ACTOR, ids):
        bookable = {offer.bucket_code for offer in view.catalog().values()}
        for p in periods:
            room = _consume_room(p, p.bucket_code in bookable)
            slots.append(Slot(view.contract.id, p.bucket_code, p.bucket.increment, None, room))
    return slots


async def _booking_slots(ctx: AppContext, ids: list[uuid.UUID]) -> list[Slot]:
    """For each contract in force and bucket of its catalog, the cheapest activity on today's period and the
    next ones of the term, as many times as each period has room for it."""
    cheapest: dict[tuple[uuid.UUID, str], tuple[str, int]] = {}
    days: dict[tuple[uuid.UUID, str], date] = {}
    today = NOW.date()
    for view, periods in await contracts.current_entitlements(ctx, ACTOR, ids):
        for code, offer in view.catalog().items():
            key = (view.contract.id, offer.bucket_code)
            if key not in cheapest or offer.units < cheapest[key][1]:
                cheapest[key] = (code, offer.units)
                days[key] = today
    slots = []
    for _ in range(FUTURE_PERIODS + 1):
        wanted = sorted({(contract_id, day) for (contract_id, _), day in days.items()})
        found = await contracts.entitlements_for_contracts(ctx, ACTOR, wanted)
        later: dict[tuple[uuid.UUID, str], date] = {}
        for (contract_id, bucket), day in days.items():
            for p in found[(contract_id, day)]:
                if p.bucket_code == bucket:
                    activity, units = cheapest[(contract_id, bucket)]
                    room = p.remaining
                    if day == today:  # what the consumptions leave of it
                        room -= _consume_room(p, True) * p.bucket.increment
                    slots.append(Slot(contract_id, activity, units, day, room // units))
                    later[(contract_id, bucket)] = p.period.end + timedelta(days=1)
        days = later
    return slots


async def _consume(ctx: AppContext, slot: Slot) -> None:
    await ledger.consume_entitlement(ctx, ACTOR, ledger.Consumption(
        contract_id=slot.contract_id, bucket=slot.what, quantity=Decimal(slot.units), reason="bench: writes"))


async def _book(ctx: AppContext, slot: Slot) -> None:
    await bookings.book_activity(ctx, ACTOR, bookings.NewBooking(
        contract_id=slot.contract_id, activity=slot.what, on=slot.day or NOW.date(), note="bench: writes"))


async def _run(ctx: AppContext, call: Callable[[AppContext, Slot], Awaitable[None]], calls: list[Slot],
               clients: int) -> tuple[float, int]:
    """Calls per second with `clients` concurrent clients taking the next call as each finishes; refusals."""
    queue = iter(calls)
    refused = 0

    async def client() -> None:
        nonlocal refused
        for slot in queue:
            try:
                await call(ctx, slot)
            except InsufficientBalance:
                refused += 1

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return len(calls) / (time.perf_counter() - started), refused


async def _ledger_size(ctx: AppContext) -> int:
    async with ctx.db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(LedgerEntry)) or 0)


async def measure(url: str, args: argparse.Namespace) -> bool:
    db = Database(url)
    ctx = AppContext(db=db, settings=Settings(database_url=url), clock=FixedClock(NOW))
    try:
        async with db.read() as session:
            ids = list(await session.scalars(select(Contract.id).order_by(Contract.reference)))
        per_kind = args.operations * args.rounds * 2
        consume_slots, booking_slots = await _consume_slots(ctx, ids), await _booking_slots(ctx, ids)
        plans = {
            "consume": (_consume, _round_robin(consume_slots, per_kind), len({s.contract_id for s in consume_slots})),
            "book": (_book, _round_robin(booking_slots, per_kind), len({s.contract_id for s in booking_slots})),
        }
        for kind, (_, _, spread) in plans.items():
            print(f"{kind}: over {spread} contracts in force")
        entries_before = await _ledger_size(ctx)
        runs = [(kind, clients) for kind in plans for clients in (args.clients, 1)]
        figures: dict[tuple[str, int], list[float]] = {run: [] for run in runs}
        refusals = 0
        for round_ in range(args.rounds):
            for kind, clients in runs if round_ % 2 == 0 else reversed(runs):
                call, calls, _ = plans[kind]
                batch, plans[kind] = calls[: args.operations], (call, calls[args.operations:], plans[kind][2])
                rate, refused = await _run(ctx, call, batch, clients)
                figures[(kind, clients)].append(rate)
                refusals += refused
        made = await _ledger_size(ctx) - entries_before
        started = time.perf_counter()
        mismatches = await reconcile_ledger(ctx)
        reconcile_seconds = time.perf_counter() - started
    finally:
        await db.dispose()

    print(f"{args.rounds} rounds of {args.operations} calls per kind and client count; calls per second "
          "(each round, then the median):")
    for (kind, clients), rates in figures.items():
        print(f"  {kind:8} {clients} client{'s' if clients > 1 else ' '}  " + "  ".join(f"{r:5.0f}" for r in rates)
              + f"   median {statistics.median(rates):5.0f}/s")
    for kind in plans:
        ratio = statistics.median(figures[(kind, args.clients)]) / statistics.median(figures[(kind, 1)])
        print(f"  {kind}: {args.clients} clients / 1 client = {ratio:.2f}")
    calls = len(runs) * args.rounds * args.operations
    print(f"refused: {refusals}; ledger entries written: {made:,} for {calls:,} calls "
          f"({'ok' if made == calls - refusals else 'WRONG'})")
    print(f"reconcile ({reconcile_seconds:.1f} s): {'clean' if not mismatches else f'{len(mismatches)} MISMATCHES'}")
    for m in mismatches[:10]:
        print(f"  {m}")
    return not mismatches and made == calls - refusals and refusals == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="a PostgreSQL server to create the scratch database on "
                                               "(e.g. postgresql://postgres@127.0.0.1:5432/postgres); default SQLite")
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--operations", type=int, default=300, help="calls per kind, client count and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()

    print(machine())
    with scratch_database(args.database_url, "writes") as url:
        env = clean_env(DATABASE_URL=url)
        entitle(env, "migrate")
        started = time.perf_counter()
        entitle(env, "generate", "--customers", str(args.customers), "--seed", "1", "--now", NOW.isoformat())
        print(f"database: {url.split(':', 1)[0]}, {args.customers} generated customers "
              f"({time.perf_counter() - started:.0f} s to generate); clock at {NOW.isoformat()}")
        ok = asyncio.run(measure(url, args))
    print(f"load average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()

"""Balance benchmark: one contract's "what is left" (`contracts.entitlements`, what `Contract.entitlements`
resolves through: the contract with its plan, the program document, the balance rows of today's periods) on a
large generated set, against the same query on an empty database, side by side.

    .venv/bin/python bench/balance.py [--database-url URL] [--contracts 8] [--seed 1] [--rounds 5] [--repeat 40]

Default: postgresql://postgres@127.0.0.1:5432/bench10k (`entitle generate --customers 10000 --seed 1 --now
2026-11-30T12:00:00+00:00`, about 3 M ledger entries), opened read-only, the clock at that --now. --contracts
contracts in force then are drawn at random (--seed) from it. The empty figure: a scratch database on the same
server (created, migrated, the shipped programs loaded, dropped at the end) holding, for each drawn contract,
one customer with one contract on the same program, plan, term and allowances, and an empty ledger. Each
round reads each contract --repeat times on the large set, then its twin as many times on the empty one, as
the contract's own customer. Figures: p50 and p95 per contract and over all samples.

Goals: p95 < 5 ms on the large set, and its p95 at most 2x the empty database's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import time
import uuid
from datetime import UTC, datetime

import psycopg
from sqlalchemy import event, func, select, text
from sqlalchemy.engine import make_url

from api.config import PROJECT_ROOT, Settings
from api.db import Database
from api.migrate import upgrade
from api.models import Contract, LedgerEntry, PlanRecord, ProgramRecord
from api.programs.loader import read_program_file
from api.services import contracts, parties, programs
from api.services.context import Actor, AppContext, FixedClock

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
GOAL_MS, GOAL_RATIO = 5.0, 2.0
ADMIN = Actor.system("bench")


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def _context(url: str, *, read_only: bool) -> AppContext:
    if read_only:
        url = make_url(url).update_query_dict({"options": "-c default_transaction_read_only=on"}).render_as_string(False)
    return AppContext(db=Database(url, pool_size=2), settings=Settings(database_url=url), clock=FixedClock(NOW))


def _customer(contract: Contract) -> Actor:
    return Actor(kind="customer", ref="user:bench-customer", name="Bench customer", customer_id=contract.customer_id)


async def draw(ctx: AppContext, count: int, seed: int) -> tuple[list[tuple[Contract, str, str, int]], int]:
    """`count` contracts with a period today, drawn at random, each with its program and plan codes and ledger rows;
    and the ledger's total."""
    today = NOW.date()
    async with ctx.db.read() as session:
        ids = list(await session.scalars(
            select(Contract.id).where(Contract.effective_date <= today, Contract.end_date >= today).order_by(Contract.id)
        ))
    random.Random(seed).shuffle(ids)
    chosen: list[uuid.UUID] = []
    for ident in ids:  # those with a bucket period today: a plan without buckets has nothing left to show
        if len(chosen) == count:
            break
        if await contracts.entitlements(ctx, ADMIN, ident):
            chosen.append(ident)
    async with ctx.db.read() as session:
        rows = (await session.execute(
            select(Contract, ProgramRecord.code, PlanRecord.code)
            .join(PlanRecord, PlanRecord.id == Contract.plan_id)
            .join(ProgramRecord, ProgramRecord.id == PlanRecord.program_id)
            .where(Contract.id.in_(chosen))
        )).all()
        entries = dict((await session.execute(
            select(LedgerEntry.contract_id, func.count()).where(LedgerEntry.contract_id.in_(chosen)).group_by(LedgerEntry.contract_id)
        )).all())
        # The planner's row estimate: an exact count of 3 M rows would take seconds and prove nothing more.
        total = int(await session.scalar(text("SELECT reltuples::bigint FROM pg_class WHERE relname = 'ledger_entries'")) or 0)
    order = {ident: n for n, ident in enumerate(chosen)}
    found = sorted(((c, program, plan, entries.get(c.id, 0)) for c, program, plan in rows), key=lambda r: order[r[0].id])
    return found, total


def _server(url: str, name: str) -> tuple[psycopg.Connection, str]:
    parsed = make_url(url)
    admin = psycopg.connect(host=parsed.host, port=parsed.port, user=parsed.username, password=parsed.password,
                            dbname="postgres", autocommit=True)
    return admin, parsed.set(database=name).render_as_string(hide_password=False)


async def twins(ctx: AppContext, drawn: list[tuple[Contract, str, str, int]]) -> dict[uuid.UUID, Contract]:
    """In the empty database: the shipped programs, and one customer with one contract like each drawn one."""
    await programs.load_programs(ctx, ADMIN, [read_program_file(p) for p in sorted((PROJECT_ROOT / "programs").glob("*.toml"))])
    made = {}
    for n, (contract, program, plan, _) in enumerate(drawn):
        customer = await parties.create_customer(ctx, ADMIN, parties.NewCustomer(code=f"bench-{n}", name=f"Bench {n}"))
        made[contract.id] = await contracts.create_contract(ctx, ADMIN, contracts.NewContract(
            reference=f"BENCH-{n}", customer_id=customer.id, program_code=program, plan_code=plan,
            effective_date=contract.effective_date, end_date=contract.end_date, monthly_fee=contract.monthly_fee,
            currency=contract.currency, custom_allowances=dict(contract.custom_allowances or {}), catalog=contract.catalog,
        ))
    return made


async def sample(ctx: AppContext, contract: Contract, repeat: int, into: list[float]) -> int:
    """Time `repeat` reads of the contract's entitlements as its customer; returns the statements of one read."""
    actor = _customer(contract)
    statements = 0

    def count(*_args) -> None:  # type: ignore[no-untyped-def]
        nonlocal statements
        statements += 1

    for _ in range(repeat):
        start = time.perf_counter()
        await contracts.entitlements(ctx, actor, contract.id)
        into.append((time.perf_counter() - start) * 1000)
    event.listen(ctx.db.engine.sync_engine, "before_cursor_execute", count)
    try:
        periods = await contracts.entitlements(ctx, actor, contract.id)
    finally:
        event.remove(ctx.db.engine.sync_engine, "before_cursor_execute", count)
    assert periods, f"contract {contract.reference} has no period today"
    return statements


async def main(args: argparse.Namespace) -> None:
    big = _context(args.database_url, read_only=True)
    drawn, ledger_rows = await draw(big, args.contracts, args.seed)
    admin, empty_url = _server(args.database_url, f"bench_balance_empty_{uuid.uuid4().hex[:8]}")
    name = make_url(empty_url).database
    admin.execute(f'CREATE DATABASE "{name}"')
    empty = None
    try:
        upgrade(empty_url)
        empty = _context(empty_url, read_only=False)
        twin = await twins(empty, drawn)
        big_samples = {c.id: [] for c, *_ in drawn}
        empty_samples = {c.id: [] for c, *_ in drawn}
        statements = {}
        for contract, *_ in drawn:  # warm both: pools, parsed programs
            await sample(big, contract, 3, [])
            await sample(empty, twin[contract.id], 3, [])
        started = time.perf_counter()
        for _ in range(args.rounds):
            for contract, *_ in drawn:
                statements[contract.id] = (
                    await sample(big, contract, args.repeat, big_samples[contract.id]),
                    await sample(empty, twin[contract.id], args.repeat, empty_samples[contract.id]),
                )
        seconds = time.perf_counter() - started
    finally:
        for ctx in (big, empty):
            if ctx is not None:
                await ctx.db.dispose()
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()

    print(f"balance (contracts.entitlements), in-process, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average "
          f"{' '.join(f'{n:.1f}' for n in os.getloadavg())}, clock {NOW.isoformat()}")
    print(f"large: {make_url(args.database_url).database}, about {ledger_rows:,} ledger entries; empty: a scratch "
          f"database with the {len(drawn)} twins and no ledger entry")
    print(f"{len(drawn)} contracts in force drawn with seed {args.seed}; {args.rounds} rounds x {args.repeat} reads "
          f"each on both ({seconds:.0f} s)\n")
    print(f"{'contract':<22} {'program/plan':<34} {'ledger':>7} {'stmts':>5} | {'large p50':>9} {'p95':>6} | "
          f"{'empty p50':>9} {'p95':>6} | p95 ratio")
    for contract, program, plan, entries in drawn:
        b, e = big_samples[contract.id], empty_samples[contract.id]
        print(f"{contract.reference:<22} {program + '/' + plan:<34} {entries:>7,} {statements[contract.id][0]:>5} | "
              f"{statistics.median(b):>9.2f} {percentile(b, 0.95):>6.2f} | {statistics.median(e):>9.2f} "
              f"{percentile(e, 0.95):>6.2f} | {percentile(b, 0.95) / percentile(e, 0.95):.2f}x")
    every_big = [s for found in big_samples.values() for s in found]
    every_empty = [s for found in empty_samples.values() for s in found]
    p95_big, p95_empty = percentile(every_big, 0.95), percentile(every_empty, 0.95)
    print(f"\nall samples: large p50 {statistics.median(every_big):.2f} ms, p95 {p95_big:.2f} ms; empty p50 "
          f"{statistics.median(every_empty):.2f} ms, p95 {p95_empty:.2f} ms")
    print(f"goal p95 < {GOAL_MS:g} ms: {p95_big:.2f} ms, {'met' if p95_big < GOAL_MS else 'NOT met'}; "
          f"goal large p95 <= {GOAL_RATIO:g}x empty: {p95_big / p95_empty:.2f}x, "
          f"{'met' if p95_big <= GOAL_RATIO * p95_empty else 'NOT met'} "
          f"(p50 ratio {statistics.median(every_big) / statistics.median(every_empty):.2f}x)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/bench10k",
                        help="the large generated set (read only); the empty scratch database is made on its server")
    parser.add_argument("--contracts", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=40, help="reads of each contract per round on each database")
    asyncio.run(main(parser.parse_args()))

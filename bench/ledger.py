"""Ledger benchmark: consumptions per second (sequential and 20 concurrent writers) and the time to read
a contract's balances as the ledger grows (it must not grow with the ledger: balances are rows, not sums).

    .venv/bin/python bench/ledger.py [--database-url URL] [--entries N]

Without --database-url it uses a throw-away SQLite file.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from api.config import PROJECT_ROOT, Settings
from api.db import Database
from api.migrate import upgrade
from api.programs.loader import read_program_file
from api.services import contracts, ledger, parties, programs
from api.services.context import Actor, AppContext, FixedClock

ADMIN = Actor.system("bench")


async def _setup(ctx: AppContext, count: int) -> list:
    await programs.load_programs(ctx, ADMIN, [read_program_file(PROJECT_ROOT / "programs" / "partner-support.toml")])
    made = []
    for i in range(count):
        customer = await parties.create_customer(ctx, ADMIN, parties.NewCustomer(code=f"bench-{i}", name=f"Bench {i}"))
        made.append(
            await contracts.create_contract(
                ctx,
                ADMIN,
                contracts.NewContract(
                    reference=f"BENCH-{i}",
                    customer_id=customer.id,
                    program_code="partner-support",
                    plan_code="enterprise",
                    effective_date=date(2026, 1, 1),
                    end_date=date(2026, 12, 31),
                    monthly_fee=Decimal("100.00"),
                    currency="EUR",
                    custom_allowances={"support-hours": 10_000_000},
                ),
            )
        )
    return made


async def _consume(ctx: AppContext, contract_id, n: int) -> None:  # type: ignore[no-untyped-def]
    await ledger.consume_entitlement(
        ctx, ADMIN, ledger.Consumption(contract_id=contract_id, bucket="support-hours", quantity=Decimal(15), reason=f"bench {n}")
    )


async def _read_latency(ctx: AppContext, contract_id, repeat: int = 200) -> float:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        await contracts.entitlements(ctx, ADMIN, contract_id)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


async def main(url: str, entries: int) -> None:
    upgrade(url)
    db = Database(url)
    ctx = AppContext(db=db, settings=Settings(database_url=url), clock=FixedClock(datetime(2026, 6, 1, 12, tzinfo=UTC)))
    made = await _setup(ctx, 20)
    probe = made[0]
    empty_read = await _read_latency(ctx, probe.id)

    start = time.perf_counter()
    for n in range(1000):
        await _consume(ctx, made[n % len(made)].id, n)
    sequential = 1000 / (time.perf_counter() - start)

    start = time.perf_counter()
    for batch in range(entries // 20):
        await asyncio.gather(*(_consume(ctx, c.id, batch) for c in made))
    concurrent = (entries // 20) * 20 / (time.perf_counter() - start)

    full_read = await _read_latency(ctx, probe.id)
    total = 1000 + (entries // 20) * 20
    await db.dispose()
    print(f"database: {db.dialect}")
    print(f"sequential consumptions: {sequential:,.0f}/s")
    print(f"20 concurrent writers:   {concurrent:,.0f}/s")
    print(f"read balances, empty ledger: {empty_read:.2f} ms; after {total:,} entries: {full_read:.2f} ms (median)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url")
    parser.add_argument("--entries", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(main(args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}", args.entries))

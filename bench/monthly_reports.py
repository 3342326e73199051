"""Monthly reports benchmark: the `send-monthly-reports` batch in dry run (every report built, rendered
to text and HTML and written as an .eml file; nothing queued) over generated contracts, at two sizes.

    .venv/bin/python bench/monthly_reports.py [--database-url URL] [--sizes 1000,2000]

Without --database-url each size gets a throw-away SQLite file; a PostgreSQL URL names a server on which
the script creates (and drops) one scratch database per size, e.g.
postgresql://postgres@127.0.0.1:5432/postgres.

The clock stands at 2026-05-02 09:00 UTC and the month is April 2026. Contracts, one customer each (one in
ten managed by a partner, which is written to instead), inserted in bulk with the values the services
write; only the batch is measured:

* 70 % Assure Medium from 2026-01-15 (UTC; quarters end 2026-04-14 and 2026-07-14, so April shows two
  periods, one of them expired): 3 activities consumed in March, 2 in April, one booking requested.
* 15 % Premium Availability (Europe/Berlin; calendar quarters of expert hours, an availability SLA):
  90 minutes consumed in April.
* 15 % Tiered Premium (Europe/Copenhagen; weekly and monthly operational report, on-call add-on): three
  tickets filed in April, each with its created, automatic acknowledgement and first-response events,
  replayed through the SLA clocks.

Each size runs twice on the same data: once timed (wall time, statements), once under tracemalloc (peak
memory of the batch: allocations made while it runs, not the interpreter's baseline).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import tracemalloc
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
from sqlalchemy import event, insert
from sqlalchemy.engine import make_url

from api.config import PROJECT_ROOT, Settings
from api.db import Database
from api.jobs.monthly_reports import queue_monthly_reports
from api.migrate import upgrade
from api.models import (
    Booking,
    BookingStatus,
    Contract,
    Customer,
    EntitlementBalance,
    LedgerEntry,
    LedgerKind,
    PartnerCustomer,
    Ticket,
    TicketEventRecord,
)
from api.programs.loader import read_program_file
from api.services import parties, programs
from api.services.context import Actor, AppContext, FixedClock

ADMIN = Actor.system("bench")
NOW = datetime(2026, 5, 2, 9, tzinfo=UTC)
MONTH = date(2026, 4, 1)
MARCH, APRIL = datetime(2026, 3, 10, 10, tzinfo=UTC), datetime(2026, 4, 8, 10, tzinfo=UTC)
PROGRAMS = ("advisory-assure.toml", "premium-availability.toml", "tiered-support.toml")


def _entry(contract_id: uuid.UUID, bucket: str, start: date, end: date, quantity: int, at: datetime) -> dict:
    return {
        "id": uuid.uuid4(), "contract_id": contract_id, "bucket_code": bucket, "period_start": start,
        "period_end": end, "quantity": quantity, "kind": LedgerKind.CONSUME, "reason": "Bench",
        "actor_kind": ADMIN.kind, "actor_ref": ADMIN.ref, "on_behalf_of_customer_id": None, "idempotency_key": None,
        "request_hash": "0" * 64, "reverses_entry_id": None, "ticket_id": None, "time_entry_id": None,
        "booking_id": None, "created_at": at,
    }


async def _insert(ctx: AppContext, model: type, rows: list[dict], chunk: int = 500) -> None:
    async with ctx.db.write() as session:
        for n in range(0, len(rows), chunk):
            await session.execute(insert(model), rows[n : n + chunk])


async def setup(ctx: AppContext, count: int) -> None:
    await programs.load_programs(ctx, ADMIN, [read_program_file(PROJECT_ROOT / "programs" / p) for p in PROGRAMS])
    partner = await parties.create_partner(
        ctx, ADMIN, parties.NewPartner(code="bench-partner", name="Bench Partner", email="partner@bench.example")
    )
    plans = {}
    for record, views in await programs.list_programs(ctx, ADMIN):
        for view in views:
            plans[(record.code, view.record.code)] = view.record.id
    rows: dict[type, list[dict]] = {m: [] for m in (Customer, PartnerCustomer, Contract, EntitlementBalance, LedgerEntry, Booking, Ticket, TicketEventRecord)}
    for i in range(count):
        customer_id, contract_id = uuid.uuid4(), uuid.uuid4()
        code = f"bench-{i:06d}"
        rows[Customer].append({"id": customer_id, "code": code, "name": f"Bench Customer {i}",
                               "email": f"it@{code}.example", "country": "DK", "created_at": NOW,
                               "report_contacts": [f"a@{code}.example", f"b@{code}.example"] if i % 3 == 0 else []})
        if i % 10 == 0:
            rows[PartnerCustomer].append({
                "partner_id": partner.id, "customer_id": customer_id, "managed": True, "production_access": False,
                "can_file_tickets": True, "can_view_entitlements": True, "can_book_activities": False, "created_at": NOW,
            })
        kind = i % 20
        if kind < 14:
            program, plan, currency, fee = "advisory-assure", "medium", "EUR", Decimal("2500.00")
            effective, end = date(2026, 1, 15), date(2027, 1, 14)
        elif kind < 17:
            program, plan, currency, fee = "premium-availability", "premium-16", "EUR", Decimal("4000.00")
            effective, end = date(2026, 1, 1), date(2026, 12, 31)
        else:
            program, plan, currency, fee = "tiered-support", "premium", "DKK", Decimal("18500.00")
            effective, end = date(2026, 1, 1), date(2026, 12, 31)
        rows[Contract].append({
            "id": contract_id, "reference": f"BENCH-{i:06d}", "customer_id": customer_id,
            "plan_id": plans[(program, plan)], "effective_date": effective, "end_date": end, "monthly_fee": fee,
            "currency": currency, "custom_allowances": {}, "catalog": None, "client_manager_id": None, "created_at": NOW,
        })
        if program == "advisory-assure":
            q1, q2 = (date(2026, 1, 15), date(2026, 4, 14)), (date(2026, 4, 15), date(2026, 7, 14))
            rows[LedgerEntry] += [_entry(contract_id, "activities", *q1, 1, MARCH + timedelta(hours=n)) for n in range(3)]
            rows[LedgerEntry] += [_entry(contract_id, "activities", *q2, 1, APRIL + timedelta(days=10, hours=n)) for n in range(2)]
            rows[EntitlementBalance] += [
                {"contract_id": contract_id, "bucket_code": "activities", "period_start": q1[0], "period_end": q1[1],
                 "allowance": 10, "consumed": 3, "overage": 0, "updated_at": NOW},
                {"contract_id": contract_id, "bucket_code": "activities", "period_start": q2[0], "period_end": q2[1],
                 "allowance": 10, "consumed": 2, "overage": 0, "updated_at": NOW},
            ]
            rows[Booking].append({
                "id": uuid.uuid4(), "contract_id": contract_id, "customer_id": customer_id, "activity_code": "advisory-call",
                "activity_name": "Advisory call", "bucket_code": "activities", "units": 1, "period_start": q2[0],
                "period_end": q2[1], "requested_date": date(2026, 5, 20), "status": BookingStatus.REQUESTED, "note": "",
                "requested_by_kind": "system", "requested_by_ref": ADMIN.ref, "requested_by_name": "bench",
                "revision": 0, "created_at": APRIL, "updated_at": APRIL,
            })
        elif program == "premium-availability":
            q2 = (date(2026, 4, 1), date(2026, 6, 30))
            rows[LedgerEntry].append(_entry(contract_id, "expert-hours", *q2, 90, APRIL))
            rows[EntitlementBalance].append({
                "contract_id": contract_id, "bucket_code": "expert-hours", "period_start": q2[0], "period_end": q2[1],
                "allowance": 960, "consumed": 90, "overage": 0, "updated_at": NOW})
        else:
            for n, (ticket_type, severity) in enumerate((("incident", "high"), ("service-request", "normal"), ("change", "low"))):
                ticket_id, filed = uuid.uuid4(), APRIL + timedelta(days=n * 7)
                rows[Ticket].append({
                    "id": ticket_id, "customer_id": customer_id, "contract_id": contract_id, "ticket_type": ticket_type,
                    "severity": severity, "status": "in_progress", "subject": "Bench", "description": "",
                    "priority_flag": False, "resolved_at": None, "filed_by_kind": "customer", "filed_by_ref": "user:bench",
                    "via_partner_id": None, "created_at": filed,
                })
                for position, (event_kind, at, automatic) in enumerate(
                    (("created", filed, False), ("acknowledged", filed, True), ("responded", filed + timedelta(minutes=30 + 20 * n), False)),
                    start=1,
                ):
                    rows[TicketEventRecord].append({
                        "id": uuid.uuid4(), "ticket_id": ticket_id, "position": position, "kind": event_kind, "at": at,
                        "actor_kind": "system", "actor_ref": ADMIN.ref, "automatic": automatic, "next_update_at": None,
                        "severity": severity if event_kind == "created" else None,
                        "plan": "premium" if event_kind == "created" else None,
                    })
    for model, found in rows.items():
        await _insert(ctx, model, found)


async def measure(url: str, count: int) -> dict[str, float]:
    upgrade(url)
    db = Database(url)
    ctx = AppContext(db=db, settings=Settings(database_url=url), clock=FixedClock(NOW))
    statements = 0

    @event.listens_for(db.engine.sync_engine, "before_cursor_execute")
    def count_statement(*_args) -> None:  # type: ignore[no-untyped-def]
        nonlocal statements
        statements += 1

    try:
        await setup(ctx, count)
        with tempfile.TemporaryDirectory() as timed_dir, tempfile.TemporaryDirectory() as traced_dir:
            statements, start = 0, time.perf_counter()
            run = await queue_monthly_reports(ctx, MONTH, dry_run=Path(timed_dir))
            wall, timed_statements = time.perf_counter() - start, statements
            tracemalloc.start()
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            traced = await queue_monthly_reports(ctx, MONTH, dry_run=Path(traced_dir))
            peak = tracemalloc.get_traced_memory()[1] - base
            tracemalloc.stop()
            assert traced.written == run.written
        return {
            "contracts": run.contracts, "written": run.written, "wall": wall, "statements": timed_statements,
            "peak": peak, "skipped": sum(run.skipped.values()),
        }
    finally:
        await db.dispose()


def _scratch(server: str | None, tmp: str, size: int) -> tuple[str, callable]:  # type: ignore[valid-type]
    if server is None:
        return f"sqlite:///{tmp}/bench-{size}.db", lambda: None
    url = make_url(server)
    name = f"entitle_bench_reports_{size}_{uuid.uuid4().hex[:8]}"
    admin = dict(host=url.host, port=url.port, user=url.username, password=url.password, dbname=url.database, autocommit=True)
    with psycopg.connect(**admin) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(**admin) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return url.set(database=name).render_as_string(hide_password=False), drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", help="a PostgreSQL server URL to create scratch databases on")
    parser.add_argument("--sizes", default="1000,2000", help="contract counts, comma-separated")
    args = parser.parse_args()
    sizes = [int(n) for n in args.sizes.split(",")]
    print(f"monthly reports for {MONTH:%Y-%m}, dry run, on {'PostgreSQL' if args.database_url else 'SQLite'}")
    print(f"{'contracts':>9} {'messages':>8} {'wall s':>7} {'ms/contract':>11} {'statements':>10} {'stmts/contract':>14} {'peak MiB':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            url, drop = _scratch(args.database_url, tmp, size)
            try:
                r = asyncio.run(measure(url, size))
            finally:
                drop()
            print(
                f"{r['contracts']:>9,} {r['written']:>8,} {r['wall']:>7.2f} {1000 * r['wall'] / r['contracts']:>11.2f} "
                f"{r['statements']:>10,} {r['statements'] / r['contracts']:>14.4f} {r['peak'] / 2**20:>8.1f}"
            )


if __name__ == "__main__":
    main()

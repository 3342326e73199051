"""Monthly reports benchmark: the monthly batch (`send-monthly-reports --dry-run`: every report built,
rendered to text and HTML and written as an .eml file; nothing queued, nothing written to the database) over
every contract in force in a month, timed and with its peak memory, at several sizes side by side.

    .venv/bin/python bench/monthly_reports.py [--sets URL,URL] [--month 2026-10] [--tracemalloc] [--profile]
    .venv/bin/python bench/monthly_reports.py --synthetic 1000,2000 [--database-url SERVER_URL] [--tracemalloc]

Default: the generated sets bench1k and bench10k on the local PostgreSQL (`entitle generate --customers N
--seed 1 --now 2026-11-30T12:00:00+00:00`), the month 2026-10, the clock at 2026-11-30 12:00 UTC. They are
only read: the batch's connections are opened with `default_transaction_read_only=on` (PostgreSQL), and any
INSERT, UPDATE or DELETE stops the run.

`--synthetic` is the earlier bench: scratch databases (throw-away SQLite files, or one per size on the
PostgreSQL server --database-url names, e.g. postgresql://postgres@127.0.0.1:5432/postgres) filled with
N contracts, one customer each (one in ten managed by a partner), and the April 2026 batch with the clock at
2026-05-02 09:00 UTC:

* 70 % Assure Medium from 2026-01-15 (UTC; quarters end 2026-04-14 and 2026-07-14, so April shows two
  periods, one of them expired): 3 activities consumed in March, 2 in April, one booking requested.
* 15 % Premium Availability (Europe/Berlin; calendar quarters of expert hours, an availability SLA):
  90 minutes consumed in April.
* 15 % Tiered Premium (Europe/Copenhagen; weekly and monthly operational report, on-call add-on): three
  tickets filed in April, each with its created, automatic acknowledgement and first-response events,
  replayed through the SLA clocks.

Each size runs in a child process of its own on the same data: the batch timed (wall and CPU time, statements
and the time inside them, the process's peak RSS from getrusage), then with --tracemalloc again under
tracemalloc (peak of the allocations made while the batch runs, not the interpreter's baseline; about 3x slower),
then with --profile again under cProfile. The statements that took the most time are listed for each size.
Goal (issue 14): 12,000 contracts under 120 s wall and 300 MB peak, memory flat from N = 1,000 to N = 10,000.
The time goal is judged on ms/contract at the largest size times 12,000 (a month has fewer contracts in force
than the set holds: 9,303 of 12,430 in October 2026 at 10,000 customers); memory on the largest size's peak RSS,
and flatness on the ratio of peaks, largest to smallest (goal <= 1.25). The default run takes about 4 minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
from sqlalchemy import event, func, insert, select
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

SERVER = "postgresql://postgres@127.0.0.1:5432"
SETS = f"{SERVER}/bench1k,{SERVER}/bench10k"
GENERATED_NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)  # the sets' --now
GOAL_CONTRACTS, GOAL_SECONDS, GOAL_MIB, GOAL_FLAT = 12_000, 120.0, 300.0, 1.25
WRITES = frozenset({"INSERT", "UPDATE", "DELETE", "MERGE", "COPY", "TRUNCATE", "CREATE", "ALTER", "DROP"})

# ---- the synthetic data set (--synthetic) -------------------------------------------------------------------

ADMIN = Actor.system("bench")
NOW = datetime(2026, 5, 2, 9, tzinfo=UTC)  # --synthetic only
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


# ---- one measurement, in a child process of its own --------------------------------------------------------


def _read_only(url: str, jit: bool) -> str:
    """The same database with every transaction read-only (PostgreSQL; SQLite relies on the write guard), and
    without just-in-time compilation of queries unless `jit`."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return url
    options = "-c default_transaction_read_only=on" + ("" if jit else " -c jit=off")
    return parsed.update_query_dict({"options": options}).render_as_string(False)


def _max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


async def measure(url: str, month: date, now: datetime, trace: bool, profile: bool = False, jit: bool = True) -> dict:
    """The batch over every contract in force in `month`, in dry run: timed, then under tracemalloc, then
    (`profile`) under cProfile."""
    db = Database(_read_only(url, jit))
    ctx = AppContext(db=db, settings=Settings(database_url=url), clock=FixedClock(now))
    statements, in_database, by_text = 0, 0.0, {}

    @event.listens_for(db.engine.sync_engine, "before_cursor_execute")
    def count_and_guard(conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        nonlocal statements
        if statement.lstrip().split(None, 1)[0].upper() in WRITES:
            raise RuntimeError(f"the dry run wrote to the database: {statement[:120]}")
        statements += 1
        conn.info["bench_started"] = time.perf_counter()

    @event.listens_for(db.engine.sync_engine, "after_cursor_execute")
    def timed(conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        nonlocal in_database
        seconds = time.perf_counter() - conn.info.pop("bench_started")
        in_database += seconds
        found = by_text.setdefault(" ".join(statement.split())[:160], [0.0, 0])
        found[0] += seconds
        found[1] += 1

    try:
        async with db.read() as session:
            in_set = int(await session.scalar(select(func.count(Contract.id))) or 0)
        rss_before = _max_rss_mib()
        with tempfile.TemporaryDirectory() as timed_dir:
            by_text.clear()
            statements, in_database, start, cpu = 0, 0.0, time.perf_counter(), time.process_time()
            run = await queue_monthly_reports(ctx, month, dry_run=Path(timed_dir))
            wall, cpu, timed_statements = time.perf_counter() - start, time.process_time() - cpu, statements
        figures = {
            "contracts": run.contracts, "in_set": in_set, "written": run.written, "skipped": sum(run.skipped.values()),
            "wall": wall, "cpu": cpu, "statements": timed_statements, "database": in_database, "rss_before": rss_before,
            "rss_peak": _max_rss_mib(), "traced_peak": None, "profile": None,
            "slowest": sorted(([t, n, sql] for sql, (t, n) in by_text.items()), reverse=True)[:4],
        }
        if trace:
            with tempfile.TemporaryDirectory() as traced_dir:
                tracemalloc.start()
                base = tracemalloc.get_traced_memory()[0]
                traced = await queue_monthly_reports(ctx, month, dry_run=Path(traced_dir))
                figures["traced_peak"] = (tracemalloc.get_traced_memory()[1] - base) / 2**20
                tracemalloc.stop()
            assert traced.written == run.written, (traced.written, run.written)
        if profile:
            with tempfile.TemporaryDirectory() as profiled_dir:
                profiler = cProfile.Profile()
                profiler.enable()
                await queue_monthly_reports(ctx, month, dry_run=Path(profiled_dir))
                profiler.disable()
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out)
            stats.sort_stats("cumulative").print_stats(r"/(api|jinja2|email)/", 20)
            stats.sort_stats("tottime").print_stats(20)
            figures["profile"] = "\n".join(line for line in out.getvalue().splitlines() if line.strip())
        return figures
    finally:
        await db.dispose()


def run_child(url: str, month: date, now: datetime, trace: bool, profile: bool, jit: bool) -> dict:
    """`measure` in a fresh process, so that its peak RSS is this run's alone."""
    command = [sys.executable, __file__, "--child", url, "--month", f"{month:%Y-%m}", "--now", now.isoformat()]
    command += (["--tracemalloc"] if trace else []) + (["--profile"] if profile else []) + ([] if jit else ["--no-jit"])
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"the batch failed on {make_url(url).render_as_string()}:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---- scratch databases (--synthetic) -----------------------------------------------------------------------


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


async def fill(url: str, count: int) -> None:
    upgrade(url)
    db = Database(url)
    try:
        await setup(AppContext(db=db, settings=Settings(database_url=url), clock=FixedClock(NOW)), count)
    finally:
        await db.dispose()


# ---- the report ----------------------------------------------------------------------------------------------


def _row(label: str, r: dict) -> str:
    per = r["wall"] / max(r["contracts"], 1)
    traced = "-" if r["traced_peak"] is None else f"{r['traced_peak']:.1f}"
    return (
        f"{label:<10} {r['in_set']:>8,} {r['contracts']:>9,} {r['written']:>8,} {r['wall']:>7.1f} {r['cpu']:>6.1f} "
        f"{r['contracts'] / r['wall']:>11.1f} {1000 * per:>11.2f} {r['database']:>6.1f} {r['statements']:>10,} "
        f"{r['statements'] / max(r['contracts'], 1):>8.3f} {r['rss_before']:>10.0f} {r['rss_peak']:>8.0f} {traced:>10}"
    )


def verdict(results: list[dict]) -> None:
    small, large = results[0], results[-1]
    projected = large["wall"] / max(large["contracts"], 1) * GOAL_CONTRACTS
    ok = projected < GOAL_SECONDS
    print(f"time: {GOAL_CONTRACTS:,} contracts at the largest size's pace: {projected:.0f} s "
          f"(goal < {GOAL_SECONDS:.0f} s: {'met' if ok else 'MISSED'})")
    ok = large["rss_peak"] < GOAL_MIB
    print(f"memory: peak RSS {large['rss_peak']:.0f} MiB at {large['contracts']:,} contracts "
          f"(goal < {GOAL_MIB:.0f} MB: {'met' if ok else 'MISSED'})")
    if len(results) > 1:
        rss = large["rss_peak"] / small["rss_peak"]
        line = f"flat: peak RSS {rss:.2f}x from {small['contracts']:,} to {large['contracts']:,} contracts"
        if small["traced_peak"] and large["traced_peak"] is not None:
            traced = large["traced_peak"] / small["traced_peak"]
            line += f", tracemalloc peak {traced:.2f}x"
            rss = max(rss, traced)
        print(f"{line} (goal <= {GOAL_FLAT}: {'met' if rss <= GOAL_FLAT else 'MISSED'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sets", default=SETS, help="generated databases to read, comma-separated, smallest first")
    parser.add_argument("--month", default="2026-10", help="the month reported, YYYY-MM (generated sets)")
    parser.add_argument("--now", default=GENERATED_NOW.isoformat(), help="the clock (generated sets)")
    parser.add_argument("--tracemalloc", dest="trace", action="store_true",
                        help="a second run under tracemalloc (slow: about 3x the timed run)")
    parser.add_argument("--profile", action="store_true", help="a third run under cProfile: where the time goes")
    parser.add_argument("--no-jit", dest="jit", action="store_false",
                        help="PostgreSQL: the batch's connections with jit=off (the server's default is on)")
    parser.add_argument("--synthetic", metavar="SIZES", help="scratch databases with this many contracts instead")
    parser.add_argument("--database-url", help="--synthetic: a PostgreSQL server URL to create scratch databases on")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    month = date.fromisoformat(f"{args.month}-01")
    now = datetime.fromisoformat(args.now)
    if args.child:
        print(json.dumps(asyncio.run(measure(args.child, month, now, args.trace, args.profile, args.jit))))
        return

    results: list[tuple[str, dict]] = []
    load = os.getloadavg()
    if args.synthetic:
        month, now = MONTH, NOW
        backend = "PostgreSQL" if args.database_url else "SQLite"
        print(f"monthly reports for {month:%Y-%m}, dry run, synthetic contracts on {backend}")
    else:
        print(f"monthly reports for {month:%Y-%m}, dry run, generated sets, clock at {now.isoformat()}"
              f"{'' if args.jit else ', PostgreSQL jit=off'}")
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    print(f"{'set':<10} {'in set':>8} {'in force':>9} {'messages':>8} {'wall s':>7} {'cpu s':>6} {'contracts/s':>11} {'ms/contract':>11} "
          f"{'db s':>6} {'statements':>10} {'stmts/c':>8} {'RSS before':>10} {'RSS peak':>8} {'traced MiB':>10}")
    if args.synthetic:
        with tempfile.TemporaryDirectory() as tmp:
            for size in (int(n) for n in args.synthetic.split(",")):
                url, drop = _scratch(args.database_url, tmp, size)
                try:
                    asyncio.run(fill(url, size))
                    results.append((f"{size:,}", run_child(url, month, now, args.trace, args.profile, args.jit)))
                finally:
                    drop()
                print(_row(*results[-1]), flush=True)
    else:
        for url in args.sets.split(","):
            results.append((make_url(url).database or url, run_child(url, month, now, args.trace, args.profile, args.jit)))
            print(_row(*results[-1]), flush=True)
    print("(cpu s: this process's CPU time in the batch; db s: time inside the statements; RSS in MiB: the child process's peak before the batch and after it;"
          " traced: tracemalloc peak of the batch)")
    for label, r in results:
        print(f"{label}: the statements taking the most time (s, count):")
        for seconds, count, sql in r["slowest"]:
            print(f"  {seconds:7.1f} {count:5}  {sql}")
    for label, r in results:
        if r["profile"]:
            print(f"\n--- profile of {label} (cProfile: the application's functions by cumulative time, then all by own"
                  f" time)\n{r['profile']}")
    load = os.getloadavg()
    print(f"load average after: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    verdict([r for _, r in results])


if __name__ == "__main__":
    main()

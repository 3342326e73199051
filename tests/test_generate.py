"""The data generator: a small generated set holds what the services would have written (the ledger
reconciles, periods are the contracts' periods, tickets replay through the SLA clocks, statuses follow the
events), and the same seed gives the same rows."""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import func, select, text

from api.config import Settings
from api.db import Database
from api.domain.periods import periods_of_term
from api.generate import GENERATED_PASSWORD, GenerateReport, generate
from api.generate.rows import COLUMNS, TABLE_ORDER, Ids, consume_hash, deduction_hash
from api.generate.rows import hash_request as fast_hash
from api.jobs.reconcile import reconcile_ledger
from api.migrate import upgrade
from api.models import (
    Booking,
    Contract,
    Customer,
    EntitlementBalance,
    LedgerEntry,
    PartnerCustomer,
    PlanRecord,
    ProgramRecord,
    Ticket,
    TicketEventRecord,
    User,
)
from api.services import identity, tickets
from api.services.context import AppContext, FixedClock
from api.services.errors import Conflict
from api.services.ledger import hash_request
from api.services.programs import program_model
from tests.conftest import ADMIN, NOW

CUSTOMERS = 20
SEED = 7
# The status each event leaves a ticket in (transitions without an event leave it as it was).
STATUS_AFTER = {
    "created": "new", "acknowledged": "acknowledged", "responded": "in_progress", "updated": "in_progress",
    "waiting_on_customer": "waiting_on_customer", "resumed": "in_progress", "resolved": "resolved",
    "reopened": "in_progress", "closed": "closed",
}


@dataclass
class Generated:
    ctx: AppContext
    report: GenerateReport


async def _generate(database_factory, seed: int, *, workers: int | None = None, batch: int = 7) -> Generated:  # type: ignore[no-untyped-def]
    url = database_factory.new()
    upgrade(url)
    ctx = AppContext(db=Database(url), settings=Settings(database_url=url), clock=FixedClock(NOW))
    report = await generate(ctx, customers=CUSTOMERS, seed=seed, batch=batch, workers=workers)
    return Generated(ctx, report)


@pytest.fixture(scope="module")
async def generated(database_factory) -> AsyncIterator[Generated]:  # type: ignore[no-untyped-def]
    found = await _generate(database_factory, SEED)
    yield found
    await found.ctx.db.dispose()


# Programs are loaded by the service, with ids of their own: generated rows name them by code here.
_BY_CODE = {
    "plan_id": "(SELECT code FROM plans WHERE plans.id = plan_id)",
    "program_id": "(SELECT code FROM programs WHERE programs.id = program_id)",
}


async def _dump(ctx: AppContext) -> dict[str, str]:
    """A digest of every generated table's rows, in a stable order."""
    digests = {}
    async with ctx.db.read() as session:
        for table in TABLE_ORDER:
            columns = ", ".join(_BY_CODE.get(c, c) for c in COLUMNS[table])
            # Loading the programs and the login test write audit rows of their own.
            where = "WHERE target_type <> 'program' AND action <> 'session.login'" if table == "audit_log" else ""
            rows = (await session.execute(text(f"SELECT {columns} FROM {table} {where}"))).all()
            digests[table] = hashlib.sha256(repr(sorted(repr(tuple(r)) for r in rows)).encode()).hexdigest()
    return digests


async def test_it_generates_the_mix_the_size_asks_for(generated: Generated) -> None:
    rows = generated.report.rows
    assert rows["customers"] == CUSTOMERS
    assert CUSTOMERS <= rows["contracts"] <= 2 * CUSTOMERS
    assert 20 * CUSTOMERS <= rows["tickets"] <= 300 * CUSTOMERS
    assert rows["ticket_events"] >= 3 * rows["tickets"] and rows["ticket_comments"] >= 2 * rows["tickets"]
    assert rows["ledger_entries"] >= 50 * CUSTOMERS
    assert rows["partners"] >= 2 and rows["partner_customers"] >= 1 and rows["outages"] >= 1
    assert rows["audit_log"] > rows["ledger_entries"] + rows["tickets"]
    async with generated.ctx.db.read() as session:
        counted = {
            model.__tablename__: await session.scalar(select(func.count()).select_from(model))
            for model in (Customer, Contract, Ticket, LedgerEntry, TicketEventRecord, Booking)
        }
        programs_used = set(await session.scalars(
            select(ProgramRecord.code).join(PlanRecord).join(Contract, Contract.plan_id == PlanRecord.id).distinct()
        ))
        statuses = Counter(await session.scalars(select(Ticket.status)))
        booking_statuses = Counter(str(s) for s in await session.scalars(select(Booking.status)))
        kinds = Counter(str(k) for k in await session.scalars(select(LedgerEntry.kind)))
        managed = set(await session.scalars(select(PartnerCustomer.managed)))
        user_kinds = Counter(str(k) for k in await session.scalars(select(User.kind)))
    assert counted == {name: rows[name] for name in counted}
    assert programs_used == {"advisory-assure", "partner-support", "premium-availability", "support-by-plan",
                             "tiered-support"}
    assert {"closed", "resolved"} <= set(statuses) and len(statuses) >= 4, statuses
    assert set(booking_statuses) == {"requested", "scheduled", "delivered", "cancelled"}, booking_statuses
    assert {"consume", "reverse"} <= set(kinds), kinds
    assert managed == {True, False}
    assert set(user_kinds) == {"staff", "customer", "partner"}


async def test_the_ledger_reconciles_and_keeps_to_the_contracts_periods(generated: Generated) -> None:
    ctx = generated.ctx
    assert await reconcile_ledger(ctx) == []
    async with ctx.db.read() as session:
        contracts = {
            c.id: (c, program_model(program).plans[plan.code])
            for c, plan, program in await session.execute(
                select(Contract, PlanRecord, ProgramRecord)
                .join(PlanRecord, PlanRecord.id == Contract.plan_id)
                .join(ProgramRecord, ProgramRecord.id == PlanRecord.program_id)
            )
        }
        balances = list(await session.scalars(select(EntitlementBalance)))
        entries = (await session.execute(
            select(LedgerEntry.contract_id, LedgerEntry.bucket_code, LedgerEntry.period_start, LedgerEntry.period_end)
        )).all()
    periods: dict[tuple, set[tuple[date, date]]] = {}
    for contract_id, (contract, plan) in contracts.items():
        for code, bucket in plan.buckets.items():
            periods[(contract_id, code)] = {
                (p.start, p.end) for p in periods_of_term(
                    effective_date=contract.effective_date, end_date=contract.end_date, length=bucket.period,
                    anchor=bucket.anchor,
                )
            }
    assert balances
    for balance in balances:
        assert 0 <= balance.consumed <= balance.allowance and balance.overage >= 0
        assert (balance.period_start, balance.period_end) in periods[(balance.contract_id, balance.bucket_code)]
    for contract_id, bucket, start, end in entries:
        assert (start, end) in periods[(contract_id, bucket)]


async def test_every_ticket_replays_through_the_sla_clocks(generated: Generated) -> None:
    ctx = generated.ctx
    share = ctx.settings.sla_at_risk_share
    seen, after, with_clocks, with_due = 0, None, 0, 0
    while True:
        page = await tickets.list_tickets(ctx, ADMIN, first=100, after=after)
        for view in page.views:
            events = view.events
            assert [e.position for e in events] == list(range(1, len(events) + 1))
            assert events[0].kind == "created" and events[0].plan == view.plan.record.code
            assert all(a.at <= b.at for a, b in zip(events, events[1:]))
            status = "new"
            for event in events:
                if not event.automatic:  # the automatic acknowledgement leaves a new ticket new
                    status = STATUS_AFTER.get(event.kind, status)
            # Taking up a new or acknowledged ticket records no event: it is in progress all the same.
            assert view.ticket.status == status or (view.ticket.status, status) in {
                ("in_progress", "new"), ("in_progress", "acknowledged")
            }, (view.ticket.status, [e.kind for e in events])
            assert (view.ticket.resolved_at is not None) == (view.ticket.status in ("resolved", "closed"))
            clocks = tickets.ticket_clocks(view, ctx.now(), share)
            with_clocks += bool(clocks)
            # The next due instant, as every event of the service leaves it.
            assert view.ticket.sla_due_at == tickets.next_due(view, events[-1].at)
            with_due += view.ticket.sla_due_at is not None
        seen += len(page.views)
        if not page.has_next_page:
            break
        after = page.end_cursor
    assert seen == generated.report.rows["tickets"]
    assert with_clocks > seen // 4 and with_due > 0
    breached = await tickets.list_tickets(ctx, ADMIN, first=20, breached=True)
    assert breached.views
    await tickets.list_tickets(ctx, ADMIN, first=20, at_risk=True)
    sla = await tickets.sla_for_tickets(ctx, ADMIN, [v.ticket.id for v in breached.views])
    assert all(any(c.breached for c in clocks) for clocks in sla.values())


async def test_generated_users_log_in_with_the_generated_password(generated: Generated) -> None:
    async with generated.ctx.db.read() as session:
        email = await session.scalar(select(User.email).where(User.kind == "customer").order_by(User.email).limit(1))
    login = await identity.log_in(generated.ctx, email, GENERATED_PASSWORD)
    assert login.user.email == email


async def test_a_database_is_generated_into_once(generated: Generated) -> None:
    with pytest.raises(Conflict):
        await generate(generated.ctx, customers=1, seed=SEED)


async def test_the_same_seed_gives_the_same_rows(generated: Generated, database_factory) -> None:  # type: ignore[no-untyped-def]
    # Built in this process, in other batches: the rows do not depend on how the work is split.
    again = await _generate(database_factory, SEED, workers=1, batch=3)
    other = await _generate(database_factory, SEED + 1)
    try:
        first, second, third = await _dump(generated.ctx), await _dump(again.ctx), await _dump(other.ctx)
        assert again.report.rows == generated.report.rows
        assert first == second
        assert first["customers"] != third["customers"] and first["tickets"] != third["tickets"]
    finally:
        await again.ctx.db.dispose()
        await other.ctx.db.dispose()


def test_request_hashes_are_the_ledgers_own() -> None:
    rng = random.Random(3)
    ids = Ids(rng)
    for _ in range(50):
        ticket, entry = ids(), ids() if rng.random() < 0.5 else None
        reason = rng.choice(("reply on ticket x", 'time logged: "Analysis" é', "Cancelled: Review (x)"))
        day = date(2026, rng.randint(1, 12), rng.randint(1, 28))
        units = rng.randint(-100, 100) or 1
        kind = rng.choice(("consume", "adjust", "overage"))
        assert deduction_hash(kind, "support-hours", units, day, reason, str(ticket), entry and str(entry)) == hash_request(
            kind, bucket="support-hours", quantity=units, period=day, reason=reason, ticket=ticket, time_entry=entry,
            booking=None, reverses=None,
        )
        assert consume_hash("expert-hours", abs(units), reason) == hash_request(
            "consume", bucket="expert-hours", quantity=str(Decimal(abs(units))), on=None, reason=reason,
            on_behalf_of=None,
        )
        payload = {"activity": "code-review", "on": day, "note": reason, "partners": sorted([str(ticket)])}
        assert fast_hash("book", **dict(payload)) == hash_request("book", **payload)
        assert fast_hash("reverse", entry=ticket, reason=reason) == hash_request("reverse", entry=ticket, reason=reason)


def test_ids_are_version_4_uuids() -> None:
    ids = Ids(random.Random(1))
    found = [ids() for _ in range(100)]
    assert len(set(found)) == 100 and all(i.version == 4 and i.variant == "specified in RFC 4122" for i in found)


def test_the_command_generates_and_the_ledger_reconciles(database_factory, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    from api.cli import main

    url = database_factory.new()
    monkeypatch.setenv("DATABASE_URL", url)
    assert main(["migrate"]) == 0
    assert main(["generate", "--customers", "3", "--seed", "5", "--now", "2026-03-10T12:00:00+00:00"]) == 0
    out = capsys.readouterr().out
    assert "generated 3 customers" in out and "--now 2026-03-10T12:00:00+00:00" in out
    assert main(["reconcile"]) == 0
    assert main(["generate", "--customers", "3"]) == 2  # a database is generated into once
    assert main(["generate", "--customers", "3", "--now", "2026-03-10T12:00:00"]) == 2  # an instant needs its offset


async def test_rows_written_in_bulk_read_back_as_the_services_write_them(database_factory) -> None:  # type: ignore[no-untyped-def]
    """A BulkWriter on its own (each write its own transaction), as a benchmark would use it."""
    from datetime import UTC, datetime

    from api.generate import rows as R
    from api.generate.bulk import BulkWriter
    from api.models import AuditEntry

    url = database_factory.new()
    upgrade(url)
    ids = Ids(random.Random(9))
    at = datetime(2026, 3, 1, 9, 30, 15, tzinfo=UTC)
    customer_id, audit_id = ids(), ids()
    rows = R.RowSet()
    rows.add("customers", R.customer(customer_id, "bulk-1", "Bulk One", "it@bulk.example", "DK", at, ["a@bulk.example"]))
    rows.add("audit_log", R.audit(audit_id, at, ADMIN, "customer.create", "customer", customer_id, customer_id,
                                  {"code": "bulk-1"}))
    writer = BulkWriter(url)
    try:
        writer.write(rows)
    finally:
        writer.close()
    db = Database(url)
    try:
        async with db.read() as session:
            customer = await session.get(Customer, customer_id)
            entry = await session.get(AuditEntry, audit_id)
    finally:
        await db.dispose()
    assert (customer.code, customer.name, customer.country, customer.report_contacts, customer.created_at) == (
        "bulk-1", "Bulk One", "DK", ["a@bulk.example"], at
    )
    assert (entry.actor_ref, entry.action, entry.target_id, entry.on_behalf_of_customer_id, entry.detail) == (
        ADMIN.ref, "customer.create", str(customer_id), customer_id, {"code": "bulk-1"}
    )

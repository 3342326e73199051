"""The worker: `run_worker(once=True)` runs each job (reconciliation, expiry reminders) once and logs what it
found; `only` runs one of them."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import update

from api.config import Settings
from api.db import Database
from api.jobs.worker import JOBS, run_worker
from api.migrate import upgrade
from api.models import EntitlementBalance
from api.programs.loader import parse_program
from api.services import contracts, ledger, parties, programs
from api.services.context import AppContext
from tests.factories import small_program
from tests.conftest import ADMIN

LOGGER = "entitle.worker"


def worker_messages(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == level]


async def test_the_worker_runs_the_reconciliation_once(ctx, make_contract, caplog):
    contract = await make_contract()
    taken = await ledger.consume_entitlement(ctx, ADMIN, ledger.Consumption(contract.id, "activities", Decimal(2)))
    await ledger.reverse_entry(ctx, ADMIN, taken.entry.id, reason="undo")
    await ledger.consume_entitlement(ctx, ADMIN, ledger.Consumption(contract.id, "activities", Decimal(3)))
    assert [job.name for job in JOBS][:2] == ["reconcile-ledger", "expiry-reminders"]
    assert JOBS[-1].name == "deliver-outbox"  # last: it sends what the others queued
    with caplog.at_level(logging.INFO, logger=LOGGER):
        await run_worker(ctx, once=True)
    said = worker_messages(caplog, logging.INFO)
    assert said[0] == "ledger reconciliation: 0 mismatch(es)"
    assert said[1].startswith("expiry reminders: ")
    assert said[-1].startswith("outbox delivery: ")
    assert worker_messages(caplog, logging.ERROR) == []


async def test_the_worker_runs_only_the_job_named(ctx, caplog):
    with caplog.at_level(logging.INFO, logger=LOGGER):
        await run_worker(ctx, once=True, only="reconcile-ledger")
    assert worker_messages(caplog, logging.INFO) == ["ledger reconciliation: 0 mismatch(es)"]
    with pytest.raises(ValueError, match="no job 'nightly'; the jobs are reconcile-ledger, expiry-reminders, "):
        await run_worker(ctx, once=True, only="nightly")


@pytest.fixture
async def fresh_ctx(database_factory, ctx) -> AsyncIterator[AppContext]:  # type: ignore[no-untyped-def]
    url = database_factory.new()
    upgrade(url)
    db = Database(url)
    try:
        yield AppContext(db=db, settings=Settings(database_url=url, outbox_dir=ctx.settings.outbox_dir), clock=ctx.clock)
    finally:
        await db.dispose()


async def test_the_worker_logs_each_mismatch(fresh_ctx, caplog):
    # In a database of its own: one balance row put out of step with its ledger.
    text = small_program("jobs", name="Jobs")
    await programs.load_programs(fresh_ctx, ADMIN, [parse_program(text)])
    customer = await parties.create_customer(fresh_ctx, ADMIN, parties.NewCustomer(code="jobs", name="Jobs"))
    contract = await contracts.create_contract(
        fresh_ctx, ADMIN,
        contracts.NewContract("JOBS-1", customer.id, "jobs", "basic", date(2026, 1, 1), date(2026, 12, 31),
                              Decimal("1.00"), "EUR"),
    )
    await ledger.consume_entitlement(fresh_ctx, ADMIN, ledger.Consumption(contract.id, "support", Decimal(2)))
    async with fresh_ctx.db.write() as session:
        await session.execute(update(EntitlementBalance).values(consumed=1))

    with caplog.at_level(logging.INFO, logger=LOGGER):
        await run_worker(fresh_ctx, once=True)
    errors = worker_messages(caplog, logging.ERROR)
    assert len(errors) == 1
    assert str(contract.id) in errors[0] and "is 1 but its ledger sums to 2" in errors[0]
    # The contract's first quarter ends on 2026-03-31 with 1 of 3 activities left: its customer is reminded.
    assert worker_messages(caplog, logging.INFO)[:2] == [
        "ledger reconciliation: 1 mismatch(es)",
        "expiry reminders: 1 contract(s) in force, 1 period(s) expiring soon, 1 message(s) queued",
    ]
    # ... and delivered in the same run: the customer has no e-mail address, so it fails at once, for good.
    assert worker_messages(caplog, logging.INFO)[-1].startswith("outbox delivery: 1 leased, 0 sent, 0 to retry, 1 failed")


async def test_a_failing_job_is_logged_and_does_not_stop_the_worker(ctx, caplog, monkeypatch):
    async def boom(_ctx: AppContext) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("api.jobs.worker.JOBS", [JOBS[0].__class__("broken", 60, boom), *JOBS])
    with caplog.at_level(logging.INFO, logger=LOGGER):
        await run_worker(ctx, once=True)
    assert any("job broken failed" in m for m in worker_messages(caplog, logging.ERROR))
    assert any(m.startswith("ledger reconciliation:") for m in worker_messages(caplog, logging.INFO))

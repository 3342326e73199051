"""Expiry reminders (`queue_expiry_reminders`): once a period with units left ends within the warning days,
the customer's correspondent (the customer, or the partner managing it) and the contract's client manager
each get one message per contract and bucket period, however often and however many workers run it.
Each test counts messages in a database of its own."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import create_engine, pool, select

from api.cli import main
from api.config import PROJECT_ROOT, Settings
from api.db import Database, sync_url
from api.jobs.reminders import ReminderRun, queue_expiry_reminders
from api.migrate import upgrade
from api.models import OutboxMessage, StaffRole, User, UserKind
from api.programs.loader import read_program_file
from api.services import contracts, identity, ledger, parties, programs
from api.services.context import AppContext, FixedClock, SystemClock
from tests.conftest import ADMIN

ASSURE = PROJECT_ROOT / "programs" / "advisory-assure.toml"
Q1, Q1_END, Q2 = date(2026, 2, 15), date(2026, 5, 14), date(2026, 5, 15)
IN_WINDOW = datetime(2026, 4, 20, 9, 0, tzinfo=UTC)  # 24 days before the first quarter ends
PROVIDER = "Assure Advisory Services"


@pytest.fixture
async def fresh_ctx(database_factory, clock) -> AsyncIterator[AppContext]:  # type: ignore[no-untyped-def]
    url = database_factory.new()
    upgrade(url)
    db = Database(url)
    ctx = AppContext(db=db, settings=Settings(database_url=url), clock=clock)
    try:
        await programs.load_programs(ctx, ADMIN, [read_program_file(ASSURE)])
        yield ctx
    finally:
        await db.dispose()


async def customer(ctx: AppContext, code: str):  # type: ignore[no-untyped-def]
    return await parties.create_customer(
        ctx, ADMIN, parties.NewCustomer(code=code, name=f"{code.title()} Ltd", email=f"it@{code}.example")
    )


async def manager(ctx: AppContext, name: str = "Carla Client-Manager"):  # type: ignore[no-untyped-def]
    email = f"{name.split()[0].lower()}@provider.example"
    return await identity.create_user(
        ctx, ADMIN,
        identity.NewUser(email, name, "a long manager password", UserKind.STAFF, staff_role=StaffRole.CLIENT_MANAGER),
    )


async def contract(ctx: AppContext, reference: str, owner, client_manager=None, effective: date = Q1, end: date = date(2027, 2, 14)):  # type: ignore[no-untyped-def]
    return await contracts.create_contract(
        ctx, ADMIN,
        contracts.NewContract(
            reference, owner.id, "advisory-assure", "small", effective, end, Decimal("500.00"), "EUR",
            client_manager_email=None if client_manager is None else client_manager.email,
        ),
    )


async def consume(ctx: AppContext, contract_id, units: int) -> None:  # type: ignore[no-untyped-def]
    await ledger.consume_entitlement(ctx, ADMIN, ledger.Consumption(contract_id, "activities", Decimal(units)))


async def reminders(ctx: AppContext) -> list[OutboxMessage]:
    async with ctx.db.read() as session:
        return list(
            await session.scalars(
                select(OutboxMessage).where(OutboxMessage.kind == "expiry_reminder").order_by(OutboxMessage.dedupe_key)
            )
        )


async def addressed(ctx: AppContext) -> list[tuple[str, str, str, str | None]]:
    return [(m.dedupe_key, m.recipient_kind, m.recipient_name, m.recipient_email) for m in await reminders(ctx)]


def keys(contract_id, start: date = Q1) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    key = f"expiry:{contract_id}:activities:{start.isoformat()}"
    return f"{key}:client-manager", f"{key}:correspondent"


async def test_each_recipient_is_reminded_once_per_contract_and_period(fresh_ctx, clock):
    acme, carla = await customer(fresh_ctx, "acme"), await manager(fresh_ctx)
    first = await contract(fresh_ctx, "ACME-1", acme, carla)
    second = await contract(fresh_ctx, "ACME-2", acme, carla)
    await consume(fresh_ctx, first.id, 2)
    clock.instant = IN_WINDOW

    assert await queue_expiry_reminders(fresh_ctx) == ReminderRun(contracts=2, expiring=2, queued=4)
    assert await queue_expiry_reminders(fresh_ctx) == ReminderRun(contracts=2, expiring=2, queued=0)
    customer_to = ("customer", "Acme Ltd", "it@acme.example")
    manager_to = ("staff", "Carla Client-Manager", "carla@provider.example")
    expected = []
    for c in (first, second):
        to_manager, to_customer = keys(c.id)
        expected += [(to_manager, *manager_to), (to_customer, *customer_to)]
    assert await addressed(fresh_ctx) == sorted(expected)

    by_key = {m.dedupe_key: m for m in await reminders(fresh_ctx)}
    to_manager, to_customer = keys(first.id)
    note = by_key[to_customer]
    assert note.customer_id == acme.id
    assert note.subject == f"[{PROVIDER}] 3 activities of Small activities expire on 2026-05-14 (ACME-1)"
    assert note.body == (
        "Contract ACME-1 of Acme Ltd (Assure Small): 2 activities of 5 activities of Small activities used in the "
        "period 2026-02-15 to 2026-05-14; 3 activities remain.\n\n"
        "What is not used by the end of 2026-05-14 (in 24 days) expires and is not carried over.\n\n"
        f"See what is left and book activities: http://127.0.0.1:8000/contracts/{first.id}"
    )
    assert by_key[to_manager].body == (
        "You are the client manager of this contract: help Acme Ltd schedule what is left before the period ends. "
        + note.body
    )
    assert by_key[keys(second.id)[1]].subject == f"[{PROVIDER}] 5 activities of Small activities expire on 2026-05-14 (ACME-2)"

    # Later in the window, with fewer units left: still nothing more for the same period.
    clock.instant = datetime(2026, 5, 14, 18, 0, tzinfo=UTC)
    await consume(fresh_ctx, first.id, 1)
    assert await queue_expiry_reminders(fresh_ctx) == ReminderRun(contracts=2, expiring=2, queued=0)
    assert len(await reminders(fresh_ctx)) == 4


async def test_two_runs_at_once_queue_each_message_once(fresh_ctx, clock):
    acme, carla = await customer(fresh_ctx, "acme"), await manager(fresh_ctx)
    contracts_ = [await contract(fresh_ctx, f"ACME-{n}", acme, carla) for n in range(3)]
    clock.instant = IN_WINDOW
    other = Database(fresh_ctx.settings.database_url)
    try:
        second = AppContext(db=other, settings=fresh_ctx.settings, clock=clock)
        runs = await asyncio.gather(queue_expiry_reminders(fresh_ctx), queue_expiry_reminders(second))
        assert [(r.contracts, r.expiring) for r in runs] == [(3, 3), (3, 3)]
        assert sum(r.queued for r in runs) == 6
        again = await asyncio.gather(queue_expiry_reminders(second), queue_expiry_reminders(fresh_ctx))
        assert [r.queued for r in again] == [0, 0]
    finally:
        await other.dispose()
    assert [key for key, *_ in await addressed(fresh_ctx)] == sorted(k for c in contracts_ for k in keys(c.id))


async def test_a_partner_managed_customer_is_reminded_through_its_partner(fresh_ctx, clock):
    globex, acme, carla = await customer(fresh_ctx, "globex"), await customer(fresh_ctx, "acme"), await manager(fresh_ctx)
    northwind = await parties.create_partner(
        fresh_ctx, ADMIN, parties.NewPartner(code="northwind", name="Northwind Solutions", email="cm@northwind.example")
    )
    await parties.link_partner(fresh_ctx, ADMIN, partner_id=northwind.id, customer_id=globex.id, managed=True,
                               production_access=False)
    # Working with a customer without managing it does not make the partner its correspondent.
    await parties.link_partner(fresh_ctx, ADMIN, partner_id=northwind.id, customer_id=acme.id, managed=False,
                               production_access=False)
    managed = await contract(fresh_ctx, "GLOBEX-1", globex, carla)
    direct = await contract(fresh_ctx, "ACME-1", acme)
    clock.instant = IN_WINDOW

    assert await queue_expiry_reminders(fresh_ctx) == ReminderRun(contracts=2, expiring=2, queued=3)
    to_manager, to_partner = keys(managed.id)
    assert await addressed(fresh_ctx) == sorted([
        (to_manager, "staff", "Carla Client-Manager", "carla@provider.example"),
        (to_partner, "partner", "Northwind Solutions", "cm@northwind.example"),
        (keys(direct.id)[1], "customer", "Acme Ltd", "it@acme.example"),
    ])
    by_key = {m.dedupe_key: m for m in await reminders(fresh_ctx)}
    assert by_key[to_partner].customer_id == globex.id
    assert by_key[to_partner].body.startswith("Globex Ltd is a customer you manage. Contract GLOBEX-1 of Globex Ltd")
    assert not [m for m in await reminders(fresh_ctx) if m.recipient_email == "it@globex.example"]


async def test_nothing_is_queued_before_the_window_or_when_nothing_remains(fresh_ctx, clock):
    acme, carla = await customer(fresh_ctx, "acme"), await manager(fresh_ctx)
    open_ = await contract(fresh_ctx, "ACME-OPEN", acme, carla)
    spent = await contract(fresh_ctx, "ACME-SPENT", acme, carla)
    await consume(fresh_ctx, spent.id, 5)
    await contract(fresh_ctx, "ACME-ENDED", acme, carla, effective=date(2025, 3, 1), end=date(2026, 2, 28))
    await contract(fresh_ctx, "ACME-LATER", acme, carla, effective=date(2026, 6, 1), end=date(2027, 5, 31))

    clock.instant = datetime(2026, 4, 13, 23, 59, tzinfo=UTC)  # 31 days left: not yet
    assert await queue_expiry_reminders(fresh_ctx) == ReminderRun(contracts=2, expiring=0, queued=0)
    assert await reminders(fresh_ctx) == []
    clock.instant = datetime(2026, 4, 14, 0, 0, tzinfo=UTC)  # 30 days left
    assert await queue_expiry_reminders(fresh_ctx) == ReminderRun(contracts=2, expiring=1, queued=2)
    assert [key for key, *_ in await addressed(fresh_ctx)] == list(keys(open_.id))
    # The next quarter, 91 days from its end: nothing (the ended and the later contract are not even checked).
    clock.instant = datetime(2026, 5, 15, 0, 0, tzinfo=UTC)
    assert await queue_expiry_reminders(fresh_ctx) == ReminderRun(contracts=2, expiring=0, queued=0)
    assert len(await reminders(fresh_ctx)) == 2


async def test_a_contract_without_a_client_manager_reminds_only_the_correspondent(fresh_ctx, clock):
    acme = await customer(fresh_ctx, "acme")
    alone = await contract(fresh_ctx, "ACME-1", acme)
    clock.instant = IN_WINDOW
    assert await queue_expiry_reminders(fresh_ctx) == ReminderRun(contracts=1, expiring=1, queued=1)
    assert await addressed(fresh_ctx) == [(keys(alone.id)[1], "customer", "Acme Ltd", "it@acme.example")]


async def test_an_inactive_client_manager_is_not_reminded(fresh_ctx, clock):
    acme, carla = await customer(fresh_ctx, "acme"), await manager(fresh_ctx)
    managed = await contract(fresh_ctx, "ACME-1", acme, carla)
    async with fresh_ctx.db.write() as session:
        (await session.get(User, carla.id)).active = False  # no service deactivates a user yet
    clock.instant = IN_WINDOW
    assert await queue_expiry_reminders(fresh_ctx) == ReminderRun(contracts=1, expiring=1, queued=1)
    assert [key for key, *_ in await addressed(fresh_ctx)] == [keys(managed.id)[1]]


async def test_the_next_period_gets_its_own_reminder(fresh_ctx, clock):
    acme, carla = await customer(fresh_ctx, "acme"), await manager(fresh_ctx)
    c = await contract(fresh_ctx, "ACME-1", acme, carla)
    clock.instant = IN_WINDOW
    assert (await queue_expiry_reminders(fresh_ctx)).queued == 2
    clock.instant = datetime(2026, 7, 20, 9, 0, tzinfo=UTC)  # 25 days before the second quarter ends
    await consume(fresh_ctx, c.id, 4)
    assert await queue_expiry_reminders(fresh_ctx) == ReminderRun(contracts=1, expiring=1, queued=2)
    assert await queue_expiry_reminders(fresh_ctx) == ReminderRun(contracts=1, expiring=1, queued=0)
    assert [key for key, *_ in await addressed(fresh_ctx)] == sorted([*keys(c.id), *keys(c.id, Q2)])
    by_key = {m.dedupe_key: m for m in await reminders(fresh_ctx)}
    assert by_key[keys(c.id, Q2)[1]].subject == f"[{PROVIDER}] 1 activity of Small activities expire on 2026-08-14 (ACME-1)"
    assert "in the period 2026-05-15 to 2026-08-14; 1 activity remain" in by_key[keys(c.id, Q2)[1]].body


# ---- the command line ----------------------------------------------------------------------------------


def test_the_worker_command_queues_the_reminders_once(database_factory, monkeypatch, capsys):
    url = database_factory.new()
    monkeypatch.setenv("DATABASE_URL", url)
    for name in ("ENTITLE_PROGRAMS_DIR", "ENTITLE_SQL_ECHO", "ENTITLE_EXPIRY_WARNING_DAYS"):
        monkeypatch.delenv(name, raising=False)
    assert main(["migrate"]) == 0
    # The command runs on the system clock: stop it 24 days before the first quarter ends.
    monkeypatch.setattr(SystemClock, "now", lambda self: IN_WINDOW)

    async def prepare():  # type: ignore[no-untyped-def]
        db = Database(url)
        try:
            ctx = AppContext(db=db, settings=Settings(database_url=url), clock=FixedClock(IN_WINDOW))
            await programs.load_programs(ctx, ADMIN, [read_program_file(ASSURE)])
            owner, carla = await customer(ctx, "acme"), await manager(ctx)
            return (await contract(ctx, "ACME-1", owner, carla)).id
        finally:
            await db.dispose()

    contract_id = asyncio.run(prepare())

    def worker_says() -> list[str]:
        """What the worker logged: JSON lines on stderr (the command configures its own logging)."""
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
        return [line["message"] for line in lines if line["logger"] == "entitle.worker"]

    capsys.readouterr()
    monkeypatch.setenv("ENTITLE_EXPIRY_WARNING_DAYS", "20")  # the deployment warns later: not yet
    assert main(["worker", "--once", "--job", "expiry-reminders"]) == 0
    assert worker_says() == ["expiry reminders: 1 contract(s) in force, 0 period(s) expiring soon, 0 message(s) queued"]
    monkeypatch.delenv("ENTITLE_EXPIRY_WARNING_DAYS")
    assert main(["worker", "--once", "--job", "expiry-reminders"]) == 0
    assert worker_says() == ["expiry reminders: 1 contract(s) in force, 1 period(s) expiring soon, 2 message(s) queued"]
    assert main(["worker", "--once", "--job", "expiry-reminders"]) == 0
    assert worker_says() == ["expiry reminders: 1 contract(s) in force, 1 period(s) expiring soon, 0 message(s) queued"]

    engine = create_engine(sync_url(url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(OutboxMessage.dedupe_key, OutboxMessage.recipient_kind, OutboxMessage.recipient_email)
                .where(OutboxMessage.kind == "expiry_reminder")
                .order_by(OutboxMessage.dedupe_key)
            ).all()
    finally:
        engine.dispose()
    to_manager, to_customer = keys(contract_id)
    assert [tuple(r) for r in rows] == [
        (to_manager, "staff", "carla@provider.example"), (to_customer, "customer", "it@acme.example")
    ]

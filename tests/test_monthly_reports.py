"""The monthly report e-mails (`queue_monthly_reports`, the `monthly-reports` worker job and
`entitle send-monthly-reports`): who gets one and at which address (report contacts, the customer, or the
managing partner and never the managed customer), one outbox row per contract and month however often and
however many workers run it, and the dry run that writes the messages instead. Each test counts messages
in a database of its own."""

from __future__ import annotations

import asyncio
import uuid
import email
import logging
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from decimal import Decimal
from email import policy as email_policy

import pytest
from sqlalchemy import select

from api.cli import main
from api.config import PROJECT_ROOT, Settings
from api.db import Database
from api.jobs.monthly_reports import (
    KIND,
    NO_ADDRESS,
    NO_REPORT,
    queue_monthly_reports,
    report_key,
    run_monthly_reports_job,
)
from api.jobs.worker import run_worker
from api.migrate import upgrade
from api.models import AuditEntry, OutboxMessage, StaffRole, UserKind
from api.programs.loader import read_program_file
from api.services import contracts, identity, ledger, parties, programs
from api.services.context import Actor, AppContext, FixedClock, SystemClock
from api.services.errors import NotFound, PermissionDenied, ValidationFailed
from tests.conftest import ADMIN

PROGRAMS = [PROJECT_ROOT / "programs" / name for name in ("advisory-assure.toml", "support-by-plan.toml")]
MARCH = date(2026, 3, 1)
APRIL_2 = datetime(2026, 4, 2, 9, tzinfo=UTC)


@pytest.fixture
async def fresh_ctx(database_factory) -> AsyncIterator[AppContext]:  # type: ignore[no-untyped-def]
    url = database_factory.new()
    upgrade(url)
    db = Database(url)
    ctx = AppContext(db=db, settings=Settings(database_url=url), clock=FixedClock(datetime(2026, 3, 10, 12, tzinfo=UTC)))
    try:
        await programs.load_programs(ctx, ADMIN, [read_program_file(p) for p in PROGRAMS])
        yield ctx
    finally:
        await db.dispose()


async def customer(ctx: AppContext, code: str, email: str | None = "default"):  # type: ignore[no-untyped-def]
    return await parties.create_customer(
        ctx, ADMIN,
        parties.NewCustomer(code=code, name=f"{code.title()} Ltd", email=f"it@{code}.example" if email == "default" else email),
    )


async def contract(ctx: AppContext, reference: str, owner, program="advisory-assure", plan="medium",  # type: ignore[no-untyped-def]
                   effective=date(2026, 2, 15), end=date(2027, 2, 14)):
    return await contracts.create_contract(
        ctx, ADMIN,
        contracts.NewContract(reference, owner.id, program, plan, effective, end, Decimal("2500.00"), "EUR"),
    )


async def world(ctx: AppContext) -> dict:  # type: ignore[type-arg]
    """Four Assure Medium contracts (report contacts; the customer's address; a managed customer with report
    contacts of its own; no address at all), one support-by-plan Free contract (no monthly report), one
    contract that ended in February (not in force in March)."""
    acme = await customer(ctx, "acme")
    await parties.set_report_contacts(ctx, ADMIN, acme.id, ["Ops@acme.example", "cfo@acme.example"])
    plain = await customer(ctx, "plain")
    managed = await customer(ctx, "globex")
    await parties.set_report_contacts(ctx, ADMIN, managed.id, ["boss@globex.example"])
    partner = await parties.create_partner(
        ctx, ADMIN, parties.NewPartner(code="northwind", name="Northwind Solutions", email="support@northwind.example")
    )
    await parties.link_partner(ctx, ADMIN, partner_id=partner.id, customer_id=managed.id, managed=True, production_access=False)
    silent = await customer(ctx, "silent", email=None)
    free = await customer(ctx, "freebie")
    found = {
        "acme": await contract(ctx, "ACME-1", acme),
        "plain": await contract(ctx, "PLAIN-1", plain),
        "globex": await contract(ctx, "GLOBEX-1", managed),
        "silent": await contract(ctx, "SILENT-1", silent),
        "free": await contract(ctx, "FREE-1", free, program="support-by-plan", plan="free"),
        "ended": await contract(ctx, "OLD-1", plain, effective=date(2025, 2, 1), end=date(2026, 2, 28)),
    }
    await ledger.consume_entitlement(ctx, ADMIN, ledger.Consumption(found["acme"].id, "activities", Decimal(3)))
    return found


async def outbox_rows(ctx: AppContext) -> list[OutboxMessage]:
    async with ctx.db.read() as session:
        return list(
            await session.scalars(select(OutboxMessage).where(OutboxMessage.kind == KIND).order_by(OutboxMessage.recipient_name))
        )


async def test_recipients_and_what_each_message_says(fresh_ctx):
    ctx = fresh_ctx
    made = await world(ctx)
    ctx.clock.instant = APRIL_2
    run = await queue_monthly_reports(ctx, MARCH)
    assert (run.contracts, run.queued, run.already_queued, run.written) == (5, 3, 0, 0)
    assert dict(run.skipped) == {NO_ADDRESS: 1, NO_REPORT: 1}

    rows = {row.dedupe_key: row for row in await outbox_rows(ctx)}
    assert set(rows) == {report_key(made[name].id, MARCH) for name in ("acme", "plain", "globex")}
    acme = rows[report_key(made["acme"].id, MARCH)]
    assert (acme.recipient_kind, acme.recipient_name, acme.recipient_email, list(acme.extra_emails)) == (
        "customer", "Acme Ltd", "ops@acme.example", ["cfo@acme.example"]
    )
    plain = rows[report_key(made["plain"].id, MARCH)]
    assert (plain.recipient_kind, plain.recipient_email, list(plain.extra_emails)) == ("customer", "it@plain.example", [])
    # The managed customer's report goes to its partner only: not to the customer, nor its report contacts.
    globex = rows[report_key(made["globex"].id, MARCH)]
    assert (globex.recipient_kind, globex.recipient_name, globex.recipient_email, list(globex.extra_emails)) == (
        "partner", "Northwind Solutions", "support@northwind.example", []
    )
    addresses = {a for row in rows.values() for a in (row.recipient_email, *row.extra_emails)}
    assert not addresses & {"it@globex.example", "boss@globex.example"}

    assert acme.subject == "[Assure Advisory Services] March 2026 report for ACME-1 (Acme Ltd)"
    text = acme.body.splitlines()
    assert "Small activities: 3 activities used in March 2026" in text
    assert "  Period Feb 15, 2026 to May 14, 2026: 3 activities of 10 activities used, 7 activities left" in text
    assert "    expires on May 14, 2026 if not used: 7 activities" in text
    assert "  Mar 2026  ############################## 3 activities" in text
    assert acme.html_body is not None and "7 activities expire on May 14, 2026 if not used" in acme.html_body
    assert globex.body.startswith("Hello Northwind Solutions,\n\nGlobex Ltd is a customer you manage: here is its report for March 2026.")
    assert "Globex Ltd is a customer you manage" in globex.html_body


async def test_a_second_run_queues_nothing_more(fresh_ctx):
    ctx = fresh_ctx
    await world(ctx)
    ctx.clock.instant = APRIL_2
    first = await queue_monthly_reports(ctx, MARCH)
    again = await queue_monthly_reports(ctx, MARCH)
    assert (first.queued, again.queued, again.already_queued) == (3, 0, 3)
    assert len(await outbox_rows(ctx)) == 3


async def test_two_workers_at_once_queue_one_message_per_contract(fresh_ctx):
    ctx = fresh_ctx
    await world(ctx)
    ctx.clock.instant = APRIL_2
    second_db = Database(ctx.settings.database_url)
    second = AppContext(db=second_db, settings=ctx.settings, clock=ctx.clock)
    try:
        runs = await asyncio.gather(queue_monthly_reports(ctx, MARCH), queue_monthly_reports(second, MARCH))
    finally:
        await second_db.dispose()
    assert sum(run.queued for run in runs) == 3
    assert all(run.queued + run.already_queued == 3 for run in runs)
    rows = await outbox_rows(ctx)
    assert len(rows) == len({row.dedupe_key for row in rows}) == 3


async def test_the_dry_run_writes_the_messages_and_queues_nothing(fresh_ctx, tmp_path):
    ctx = fresh_ctx
    made = await world(ctx)
    ctx.clock.instant = APRIL_2
    seen: list[tuple[int, int]] = []
    run = await queue_monthly_reports(ctx, MARCH, dry_run=tmp_path, progress=lambda done, total: seen.append((done, total)))
    assert (run.queued, run.written) == (0, 3)
    assert seen == [(5, 5)]
    assert await outbox_rows(ctx) == []
    files = sorted(tmp_path.glob("*.eml"))
    assert len(files) == 3
    path = tmp_path / f"{report_key(made['acme'].id, MARCH).replace(':', '_')}.eml"
    message = email.message_from_bytes(path.read_bytes(), policy=email_policy.default)
    assert message["To"] == "Acme Ltd <ops@acme.example>, cfo@acme.example"
    assert message["Subject"] == "[Assure Advisory Services] March 2026 report for ACME-1 (Acme Ltd)"
    parts = {part.get_content_type(): part.get_content() for part in message.walk() if not part.is_multipart()}
    assert set(parts) == {"text/plain", "text/html"}
    assert "3 activities of 10 activities used, 7 activities left" in parts["text/plain"]
    assert "7 activities expire on May 14, 2026 if not used" in parts["text/html"]


async def test_only_months_that_are_over(fresh_ctx):
    ctx = fresh_ctx  # 2026-03-10
    with pytest.raises(ValidationFailed, match="not over") as refused:
        await queue_monthly_reports(ctx, MARCH)
    assert refused.value.field == "month"


async def test_the_worker_job_waits_for_the_report_day(fresh_ctx, caplog):
    ctx = fresh_ctx
    await world(ctx)
    ctx.settings = Settings(database_url=ctx.settings.database_url, report_day=5)
    ctx.clock.instant = datetime(2026, 4, 4, 23, tzinfo=UTC)
    assert await run_monthly_reports_job(ctx) is None
    ctx.clock.instant = datetime(2026, 4, 5, 0, 30, tzinfo=UTC)
    with caplog.at_level(logging.INFO, logger="entitle.worker"):
        await run_worker(ctx, once=True, only="monthly-reports")
    said = [r.getMessage() for r in caplog.records if r.name == "entitle.worker"]
    assert said == [
        "monthly reports for 2026-03: 5 contract(s), 3 queued, 0 already queued, skipped: "
        f"1 {NO_REPORT}, 1 {NO_ADDRESS}"
    ] or said == [
        "monthly reports for 2026-03: 5 contract(s), 3 queued, 0 already queued, skipped: "
        f"1 {NO_ADDRESS}, 1 {NO_REPORT}"
    ]
    assert len(await outbox_rows(ctx)) == 3
    with pytest.raises(ValueError, match="ENTITLE_REPORT_DAY"):
        Settings(report_day=29)


# ---- report contacts ---------------------------------------------------------------------------------------


async def test_report_contacts_are_checked_and_audited(fresh_ctx):
    ctx = fresh_ctx
    acme = await customer(ctx, "acme")
    saved = await parties.set_report_contacts(ctx, ADMIN, acme.id, [" A@acme.example", "b@acme.example", "a@acme.example", ""])
    assert saved.report_contacts == ["a@acme.example", "b@acme.example"]
    with pytest.raises(ValidationFailed, match="not an e-mail address") as refused:
        await parties.set_report_contacts(ctx, ADMIN, acme.id, ["a@acme.example", "nobody"])
    assert refused.value.field == "reportContacts"
    with pytest.raises(ValidationFailed, match="at most 20"):
        await parties.set_report_contacts(ctx, ADMIN, acme.id, [f"u{n}@acme.example" for n in range(21)])
    cleared = await parties.set_report_contacts(ctx, ADMIN, acme.id, [])
    assert cleared.report_contacts == []
    async with ctx.db.read() as session:
        audits = list(await session.scalars(
            select(AuditEntry).where(AuditEntry.action == "customer.report_contacts").order_by(AuditEntry.occurred_at, AuditEntry.id)
        ))
    changes = sorted((a.detail["before"], a.detail["after"]) for a in audits)  # one instant: order by content
    assert changes == [([], ["a@acme.example", "b@acme.example"]), (["a@acme.example", "b@acme.example"], [])]


async def test_who_may_set_report_contacts(fresh_ctx):
    ctx = fresh_ctx
    acme, other = await customer(ctx, "acme"), await customer(ctx, "other")
    carla = await identity.create_user(
        ctx, ADMIN, identity.NewUser("carla@provider.example", "Carla", "a long manager password", UserKind.STAFF,
                                     staff_role=StaffRole.CLIENT_MANAGER),
    )
    await contracts.create_contract(
        ctx, ADMIN,
        contracts.NewContract("ACME-1", acme.id, "advisory-assure", "small", date(2026, 2, 15), date(2027, 2, 14),
                              Decimal("500.00"), "EUR", client_manager_email=carla.email),
    )
    manager = Actor(kind="staff", ref=f"user:{carla.id}", name="Carla", roles=frozenset({"client_manager"}), user_id=carla.id)
    assert (await parties.set_report_contacts(ctx, manager, acme.id, ["x@acme.example"])).report_contacts == ["x@acme.example"]
    with pytest.raises(NotFound):  # not assigned to her: answered as a customer that does not exist
        await parties.set_report_contacts(ctx, manager, other.id, ["x@other.example"])
    engineer = Actor(kind="staff", ref="user:sam", name="Sam", roles=frozenset({"support_engineer"}))
    with pytest.raises(PermissionDenied):
        await parties.set_report_contacts(ctx, engineer, acme.id, ["x@acme.example"])
    own = Actor(kind="customer", ref="user:anna", name="Anna", customer_id=acme.id)
    with pytest.raises(PermissionDenied):
        await parties.set_report_contacts(ctx, own, acme.id, ["x@acme.example"])
    with pytest.raises(NotFound):
        await parties.set_report_contacts(ctx, ADMIN, uuid.uuid4(), ["x@acme.example"])


# ---- the command line ----------------------------------------------------------------------------------


def test_the_commands(database_factory, monkeypatch, capsys, tmp_path):
    url = database_factory.new()
    monkeypatch.setenv("DATABASE_URL", url)
    for name in ("ENTITLE_PROGRAMS_DIR", "ENTITLE_SQL_ECHO", "ENTITLE_REPORT_DAY"):
        monkeypatch.delenv(name, raising=False)
    assert main(["migrate"]) == 0

    async def prepare() -> None:
        db = Database(url)
        try:
            ctx = AppContext(db=db, settings=Settings(database_url=url), clock=FixedClock(datetime(2026, 3, 10, 12, tzinfo=UTC)))
            await programs.load_programs(ctx, ADMIN, [read_program_file(p) for p in PROGRAMS])
            await world(ctx)
        finally:
            await db.dispose()

    asyncio.run(prepare())
    monkeypatch.setattr(SystemClock, "now", lambda self: APRIL_2)
    capsys.readouterr()

    assert main(["customer", "report-contacts", "plain", "--set", "Boss@plain.example,ops@plain.example"]) == 0
    assert capsys.readouterr().out == "report contacts of plain: boss@plain.example, ops@plain.example\n"
    assert main(["customer", "report-contacts", "plain", "--set", "nope"]) == 2
    assert "is not an e-mail address" in capsys.readouterr().err

    assert main(["report", "--contract", "ACME-1", "--month", "2026-03"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Assure Advisory Services: report for March 2026"
    assert "Small activities: 3 activities used in March 2026" in out
    assert main(["report", "--contract", "ACME-1", "--month", "2026-03", "--format", "csv"]) == 0
    assert "bucket,activities,2026-03-01,2026-03-31,consumed_in_month,3,activities,3 activities" in capsys.readouterr().out.splitlines()
    assert main(["report", "--contract", "ACME-1", "--month", "2026-05"]) == 2
    assert "has not begun" in capsys.readouterr().err

    assert main(["send-monthly-reports", "--month", "2026-03", "--dry-run", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"written (dry run, nothing queued): 3 message(s) in {tmp_path}" in out
    assert len(list(tmp_path.glob("*.eml"))) == 3
    assert main(["send-monthly-reports", "--month", "2026-03"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "5 contract(s) in force in 2026-03", "queued: 3", "already queued: 0", "skipped: 2",
        f"  1: {NO_ADDRESS}", f"  1: {NO_REPORT}",
    ]
    assert main(["send-monthly-reports", "--month", "2026-03"]) == 0
    assert capsys.readouterr().out.splitlines()[1:3] == ["queued: 0", "already queued: 3"]
